#!/bin/bash
# build.sh builds the baseline initramfs mcinit is benchmarked against: a
# classic minimal image with Debian's busybox-static, dmsetup (with its
# shared libraries) and the /init script init.sh, loading the very module
# files of a given mcinit initramfs, opening the verity root of a given
# disk and switch_rooting into its /sbin/init.
#
#   build.sh -m MCINIT_INITRAMFS -d DISK -r ROOT_HASH -o OUT.cpio.gz
#
# Options: -f FSTYPE (root filesystem, default erofs), -p PCR (default 13),
# -l DATA_LABEL,HASH_LABEL (GPT names, default root,root-verity),
# -M "NAME..." (load only these modules and their dependencies, e.g. the
# set mcinit's production boot loads; default: every module in the image,
# which are all copied either way).
# The archive is reproducible: sorted names, fixed times and owners,
# `cpio --reproducible`, `gzip -n -9`. Needs busybox-static, dmsetup,
# cryptsetup-bin (veritysetup dump), gdisk (sgdisk), cpio, gzip, lz4.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mcinit_initrd= disk= roothash= out= fstype=erofs pcr=13 labels=root,root-verity only=
while getopts m:d:r:o:f:p:l:M: opt; do
	case $opt in
	m) mcinit_initrd=$OPTARG ;;
	d) disk=$OPTARG ;;
	r) roothash=$OPTARG ;;
	o) out=$OPTARG ;;
	f) fstype=$OPTARG ;;
	p) pcr=$OPTARG ;;
	l) labels=$OPTARG ;;
	M) only=$OPTARG ;;
	*) exit 2 ;;
	esac
done
if [[ -z $mcinit_initrd || -z $disk || -z $roothash || -z $out ]]; then
	echo "usage: build.sh -m MCINIT_INITRAMFS -d DISK -r ROOT_HASH -o OUT.cpio.gz" >&2
	exit 2
fi
[[ $roothash =~ ^[0-9a-f]{64}$ ]] || { echo "build.sh: root hash must be 64 lowercase hex digits" >&2; exit 2; }
[[ $pcr =~ ^[0-9]+$ && $pcr -lt 24 ]] || { echo "build.sh: bad PCR $pcr" >&2; exit 2; }
data_label=${labels%%,*}
hash_label=${labels#*,}
for t in busybox dmsetup veritysetup sgdisk cpio gzip lz4; do
	command -v "$t" >/dev/null || { echo "build.sh: $t not found (make deps)" >&2; exit 1; }
done
bb=$(command -v busybox)
file -L "$bb" 2>/dev/null | grep -q 'statically linked' || ldd "$bb" 2>&1 | grep -q 'not a dynamic' ||
	{ echo "build.sh: $bb is not static (install busybox-static)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,run,newroot,lib,lib64}

# The module files and their order, from mcinit's own image.
mkdir "$work/mc"
# mcinit's images are LZ4-compressed (legacy frame; older ones gzip).
case $(od -An -tx1 -N4 "$mcinit_initrd" | tr -d ' \n') in
02214c18) unpack=(lz4 -q -d -c) ;;
1f8b*) unpack=(gzip -d -c) ;;
*) echo "build.sh: $mcinit_initrd is neither lz4 nor gzip" >&2; exit 1 ;;
esac
(cd "$work/mc" && "${unpack[@]}" "$mcinit_initrd" | cpio -id --quiet 'lib/modules/*')
release=$(ls "$work/mc/lib/modules")
[[ $(wc -w <<<"$release") == 1 ]] || { echo "build.sh: want one kernel release in $mcinit_initrd, have: $release" >&2; exit 1; }
moddir=$work/mc/lib/modules/$release
mkdir -p "$root/lib/modules/$release"
(cd "$moddir" && find . -name '*.ko*' -print0 | cpio -0pdm --quiet "$root/lib/modules/$release")
# modules.dep: "path: dep dep..."; tsort gives an order with every
# dependency first.
order=$(awk -F': *' '{ print $1, $1; n = split($2, d, " "); for (i = 1; i <= n; i++) print d[i], $1 }' "$moddir/modules.dep" | tsort)
for m in $order; do
	[[ -f $root/lib/modules/$release/$m ]] || { echo "build.sh: $m listed in modules.dep but not in the image" >&2; exit 1; }
done
if [[ -n $only ]]; then
	# The named modules' lines of modules.dep (names compare with - and _
	# alike, as modprobe does): each module with its whole dependency list.
	want=$(awk -F': *' -v names="$only" '
		function norm(s) { sub(/.*\//, "", s); sub(/\.ko.*/, "", s); gsub(/-/, "_", s); return s }
		BEGIN { n = split(names, a, " "); for (i = 1; i <= n; i++) w[norm(a[i])] = 1 }
		(norm($1) in w) { found[norm($1)] = 1; print $1; m = split($2, d, " "); for (i = 1; i <= m; i++) print d[i] }
		END { for (k in w) if (!(k in found)) { print "build.sh: module " k " not in the image" > "/dev/stderr"; exit 1 } }' "$moddir/modules.dep" | sort -u)
	order=$(for m in $order; do grep -qxF "$m" <<<"$want" && echo "$m"; done)
fi

# The verity table's fixed fields, from the hash partition's superblock.
part_range() { # name -> "start_sector sectors"
	sgdisk -p "$disk" | awk -v n="$1" '$1 ~ /^[0-9]+$/ && $NF == n { print $2, $3 - $2 + 1 }'
}
read -r hstart hsize < <(part_range "$hash_label")
[[ -n ${hstart:-} ]] || { echo "build.sh: no partition $hash_label on $disk" >&2; exit 1; }
[[ -n $(part_range "$data_label") ]] || { echo "build.sh: no partition $data_label on $disk" >&2; exit 1; }
dd if="$disk" of="$work/hash.img" bs=512 skip="$hstart" count="$hsize" status=none
dump=$(veritysetup dump "$work/hash.img")
field() { awk -F':[ \t]*' -v k="$1" '$1 == k { print $2 }' <<<"$dump"; }
data_blocks=$(field "Data blocks")
data_bs=$(field "Data block size")
hash_bs=$(field "Hash block size")
hash_alg=$(field "Hash algorithm")
salt=$(field "Salt")
[[ $(field "Hash type") == 1 ]] || { echo "build.sh: hash type $(field "Hash type"), want 1" >&2; exit 1; }
[[ -n $salt ]] || salt=-
# The superblock occupies the hash partition's first block.
hash_start=$((512 / hash_bs + (512 % hash_bs > 0 ? 1 : 0)))

cat >"$root/etc/bbinit.conf" <<EOF
RELEASE=$release
MODULES="$(echo $order)"
DATA_LABEL=$data_label
HASH_LABEL=$hash_label
DATA_SECTORS=$((data_blocks * data_bs / 512))
DATA_BLOCKS=$data_blocks
DATA_BLOCK_SIZE=$data_bs
HASH_BLOCK_SIZE=$hash_bs
HASH_START=$hash_start
HASH_ALG=$hash_alg
ROOT_HASH=$roothash
SALT=$salt
ROOT_FSTYPE=$fstype
PCR=$pcr
PCR_HEX=$(printf %02x "$pcr")
TPM_REQUIRED=1
EOF
install -m 0755 "$here/init.sh" "$root/init"

# busybox with the applets the script runs, dmsetup with its libraries.
install -m 0755 "$bb" "$root/bin/busybox"
for a in sh mount mkdir insmod usleep sleep echo printf sha256sum sed dd od tr switch_root halt; do
	ln -s busybox "$root/bin/$a"
done
install -m 0755 "$(command -v dmsetup)" "$root/sbin/dmsetup"
ldd "$(command -v dmsetup)" | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }' | while read -r lib; do
	dst=$root$lib
	mkdir -p "$(dirname "$dst")"
	cp -L "$lib" "$dst"
done

# Reproducible archive.
find "$root" -exec touch -h -d @0 {} +
mkdir -p "$(dirname "$out")"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc --reproducible -R 0:0 --quiet) | gzip -n -9 >"$out.tmp"
mv "$out.tmp" "$out"
echo "busybox initramfs $out: kernel $release, loads $(wc -w <<<"$order") modules, dmsetup $(dmsetup --version 2>/dev/null | awk '/Library/ { print $3 }')"
