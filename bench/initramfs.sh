#!/usr/bin/env bash
# Benchmark `mcinit initramfs` repacking from a prebuilt device payload
# (out/device, as `make build` installs it: no source tree, no Go
# toolchain on PATH) against the build path that compiles /init each time
# (cmds/mkdevice with the Go toolchain, then the same pack; the only path
# before payloads existed). Same policy, keys and kernel; runs in rounds
# (build, then repack); medians; every image of both sides must be
# byte-identical.
#   RUNS=3 bench/initramfs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing (Debian time)" >&2; exit 1; }
repo=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/initramfs-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/keys" "$work/cwd"
go build -o "$work/bin/mcinit" ./cmds/mcinit
gocache=$(go env GOCACHE)
kernel=$(scripts/debpkg.sh amd64 linux-image-cloud-amd64)
m="$work/bin/mcinit"
"$m" keygen -out "$work/rel" >/dev/null
cp "$work/rel.pub" "$work/keys/rel.pem"
echo 'threshold = 1' >"$work/keys/keyset.toml"
"$m" policy new -version 1 -board qemu-x86_64 -root-name A -root-hash "$(printf 'ab%.0s' {1..32})" -data-blocks 1 -out "$work/policy.toml"
"$m" policy sign -key "$work/rel.key" "$work/policy.toml" >/dev/null
pack=(-arch amd64 -policy "$work/policy.toml" -keys "$work/keys" -kernel "$kernel")

run() { # side n
	local side=$1 n=$2 xdg
	case $side in
	build) # compile the payload, then pack with it
		xdg=$(mktemp -d)
		/usr/bin/time -o "$work/time" -f "%e %U %S" bash -c '
			XDG_CACHE_HOME=$1 GOCACHE=$2 go run ./cmds/mkdevice -arch amd64 -o "$3/dev-$4" &&
			"$5" initramfs -device "$3/dev-$4" "${@:7}" -o "$6" >/dev/null' _ \
			"$xdg" "$gocache" "$work" "$n" "$m" "$work/build-$n.gz" "${pack[@]}"
		if ((n == 1)); then mkdir -p "$work/bin/device/amd64" && cp "$work/dev-1/amd64/init.cpio" "$work/bin/device/amd64/"; fi
		rm -rf "$xdg" "$work/dev-$n" ;;
	repack) # the installed CLI outside the source tree, no toolchain on PATH
		(cd "$work/cwd" && PATH=/usr/bin:/bin /usr/bin/time -o "$work/time" -f "%e %U %S" \
			"$m" initramfs "${pack[@]}" -o "$work/repack-$n.gz" >/dev/null) ;;
	esac
	read -r wall user sys <"$work/time"
	awk -v w="$wall" -v u="$user" -v s="$sys" 'BEGIN {print w, u + s}' >>"$work/res.$side"
}

# Each round runs the build path, then repacks; the first build's payload
# is installed beside the CLI (as make build does) for every repack.
for ((i = 1; i <= RUNS; i++)); do
	run build "$i"
	run repack "$i"
	cmp -s "$work/build-$i.gz" "$work/repack-$i.gz" || { echo "run $i: the two paths' images differ" >&2; exit 1; }
	cmp -s "$work/repack-1.gz" "$work/repack-$i.gz" || { echo "run $i: repacked images differ between runs" >&2; exit 1; }
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
bw=$(cut -d' ' -f1 "$work/res.build" | median)
bc=$(cut -d' ' -f2 "$work/res.build" | median)
echo "mcinit initramfs (amd64, 1 board, $(stat -c %s "$work/repack-1.gz") bytes), $RUNS rounds (build, then repack), medians; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %9s %9s %9s %10s\n' path wall_s speedup cpu_s cpu_ratio
for s in build repack; do
	w=$(cut -d' ' -f1 "$work/res.$s" | median)
	c=$(cut -d' ' -f2 "$work/res.$s" | median)
	label=$([ $s = build ] && echo "build (go run mkdevice + pack)" || echo "repack (payload, no toolchain)")
	awk -v t="$label" -v w="$w" -v c="$c" -v bw="$bw" -v bc="$bc" \
		'BEGIN {printf "%-34s %9.2f %8.1fx %9.2f %9.1fx\n", t, w, bw / w, c, bc / c}'
done
echo "(speedup, cpu_ratio: the build path's median over the path's; images byte-identical on both paths)"
