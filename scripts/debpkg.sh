#!/bin/bash
# debpkg.sh ARCH NAME: fetch and unpack a Debian package (no install, no
# change to the system's apt configuration) into the mcinit cache, and print
# the directory it was unpacked into.
#
# NAME may be a metapackage such as linux-image-cloud-amd64: it is resolved
# to the concrete package it depends on (the current kernel), so no version is
# ever hard-coded. ARCH is a Debian architecture (amd64, arm64).
#
# The cache is ${MCINIT_CACHE:-$HOME/.cache/mcinit}; a second call is free.
set -euo pipefail
arch=${1:?usage: debpkg.sh ARCH NAME}
name=${2:?usage: debpkg.sh ARCH NAME}
cache=${MCINIT_CACHE:-$HOME/.cache/mcinit}
lists=$cache/apt-lists-$arch
mkdir -p "$cache/debs" "$lists/partial"

apt_opts=(-o APT::Sandbox::User=root -o "APT::Architecture=$arch" -o "APT::Architectures=$arch"
	-o "Dir::State::Lists=$lists" -o "Dir::Cache=$cache/apt-cache-$arch")
mkdir -p "$cache/apt-cache-$arch/archives/partial"

# Refresh the private package lists at most once a day.
stamp=$lists/.updated
if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440 2>/dev/null)" ]; then
	apt-get "${apt_opts[@]}" -qq update >&2
	touch "$stamp"
fi

# Resolve a metapackage to the first concrete linux-image/linux-headers
# package it depends on; a concrete name resolves to itself.
pkg=$name
dep=$(apt-cache "${apt_opts[@]}" depends "$name" 2>/dev/null |
	awk '/Depends: linux-(image|headers|modules)-[0-9]/ {print $2; exit}')
[ -n "$dep" ] && pkg=$dep

out=$cache/pkgs/$arch/$pkg
if [ ! -f "$out/.unpacked" ]; then
	tmp=$(mktemp -d "$cache/debs/dl.XXXXXX")
	(cd "$tmp" && apt-get "${apt_opts[@]}" -qq download "$pkg:$arch" >&2)
	rm -rf "$out" && mkdir -p "$out"
	dpkg -x "$tmp"/*.deb "$out"
	rm -rf "$tmp"
	touch "$out/.unpacked"
fi
echo "$out"
