#!/usr/bin/env bash
# initramfs.sh ARCH is `make initramfs ARCH=amd64|arm64`: a signed, bootable
# production initramfs for QEMU from a fresh clone. It makes (once) a
# signing key in out/initramfs/keys, a test disk out/initramfs/disk-ARCH.img
# with `mcinit image -verity`, a policy for the QEMU board pinning that
# disk's root hash, signs it, fetches Debian's cloud kernel for its modules
# and packs out/initramfs-ARCH.cpio.lz4. Set POLICY=FILE (signed, FILE.sig
# beside it) and KEYS=DIR to pack your own policy instead.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-amd64}
out=${OUT:-out}
mcinit=$out/mcinit
case $arch in
amd64) board=qemu-x86_64 ;;
arm64) board=qemu-aarch64-virt ;;
*) echo "initramfs.sh: ARCH must be amd64 or arm64, not $arch" >&2; exit 2 ;;
esac
work=$out/initramfs
mkdir -p "$work"
keys=${KEYS:-$work/keys}
policy=${POLICY:-}
if [ -z "$policy" ]; then
	if [ ! -f "$work/release.key" ]; then
		"$mcinit" keygen -out "$work/release" >/dev/null
		mkdir -p "$keys"
		cp "$work/release.pub" "$keys/release.pem"
	fi
	disk=$work/disk-$arch.img
	res=$("$mcinit" image -arch "$arch" -verity -out "$disk" -json)
	hash=$(sed -n 's/.*"RootHash": "\([0-9a-f]*\)".*/\1/p' <<<"$res")
	blocks=$(sed -n 's/.*"DataBlocks": \([0-9]*\).*/\1/p' <<<"$res")
	policy=$work/policy-$arch.toml
	rm -f "$policy" "$policy.sig"
	"$mcinit" policy new -version 1 -board "$board" -root-name demo -root-hash "$hash" -data-blocks "$blocks" -out "$policy"
	"$mcinit" policy sign -key "$work/release.key" "$policy" >/dev/null
	echo "initramfs.sh: policy $policy pins $disk (root hash $hash)"
fi
kernel=$(scripts/debpkg.sh "$arch" "linux-image-cloud-$arch")
"$mcinit" initramfs -arch "$arch" -policy "$policy" -keys "$keys" -kernel "$kernel" -o "$out/initramfs-$arch.cpio.lz4"
