#!/usr/bin/env bash
# bench/devdiff.sh: `mcinit devdiff` over an overlay upper of 100,000 files,
# side by side with baselines over the very same tree, runs interleaved:
#   listing  vs  find -printf (lstat of every entry, no content read)
#   -tar     vs  GNU tar -c --xattrs of the upper (reads every byte)
# The tree is generated once (coreutils only): a lower of 10,000 files, an
# upper holding copies of all of them (1 in 10 changed, all compared byte
# by byte against the lower), 90,000 new files and, as root, 1,000 whiteouts.
#
# Usage: bench/devdiff.sh [ROUNDS]   (env: MCINIT=path/to/mcinit, KEEP=1,
# TREE=dir: reuse the lower/ and upper/ a KEEP=1 run left in dir)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
work=$(mktemp -d "${TMPDIR:-/tmp}/mcinit-bench-devdiff.XXXXXX")
[[ -n ${KEEP:-} ]] || trap 'rm -rf "$work"' EXIT

MCINIT=${MCINIT:-}
if [[ -z $MCINIT ]]; then
	MCINIT=$work/mcinit
	go build -o "$MCINIT" ./cmds/mcinit
fi

lower=$work/lower upper=$work/upper
if [[ -n ${TREE:-} ]]; then
	lower=$TREE/lower upper=$TREE/upper
	[[ -d $lower && -d $upper ]] || { echo "TREE=$TREE: no lower/ and upper/ there" >&2; exit 1; }
else
mkdir -p "$lower" "$upper"
# Small files of 1,000 bytes, 1,000 per directory, contents from seq so
# they are distinct.
fill() { # dir seed
	mkdir -p "$1"
	{ seq "$2" $(($2 + 400000)) || true; } | head -c 1000000 | (cd "$1" && split -b 1000 -a 3 -d - f)
}
echo "generating the tree in $work ..." >&2
for d in $(seq 0 9); do fill "$lower/d$d" $((d * 1000)); done
cp -a "$lower/." "$upper/"
for d in $(seq 0 9); do
	for f in "$upper/d$d"/f??0; do echo changed >>"$f"; done
done
for d in $(seq 10 99); do fill "$upper/d$d" $((d * 1000)); done
if [[ $(id -u) == 0 ]]; then
	for d in $(seq 0 9); do
		for i in $(seq -w 1 99); do
			rm "$upper/d$d/f${i}1" 2>/dev/null && mknod "$upper/d$d/f${i}1" c 0 0 || true
		done
	done
fi
fi
nfiles=$(find "$upper" -type f | wc -l)
nwh=$(find "$upper" -type c | wc -l)

ms() { # runs "$@" once, prints wall and CPU (user+sys) milliseconds
	local TIMEFORMAT='%3R %3U %3S'
	{ time "$@" >/dev/null 2>/dev/null; } 2>&1 | awk '{ printf "%d %d\n", $1 * 1000, ($2 + $3) * 1000 }'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

list_dd() { "$MCINIT" devdiff -upper "$upper" -lower "$lower"; }
list_find() { find "$upper" -printf '%y %m %U %G %s %T@ %p\n'; }
tar_dd() { "$MCINIT" devdiff -q -upper "$upper" -lower "$lower" -tar "$work/out.tar"; }
tar_gnu() { tar --xattrs -cf "$work/gnu.tar" -C "$upper" .; }

# Warm the page cache once, then interleave.
list_dd >/dev/null; list_find >/dev/null
declare -A t c
for r in $(seq "$ROUNDS"); do
	for k in list_dd list_find tar_dd tar_gnu; do
		read -r wall cpu < <(ms $k)
		t[$k]+="$wall " c[$k]+="$cpu "
	done
done
changes=$(list_dd | wc -l)
rss=""
if [[ -x /usr/bin/time ]]; then
	rss=$( { /usr/bin/time -f %M "$MCINIT" devdiff -upper "$upper" -lower "$lower" >/dev/null; } 2>&1 | tail -1)
fi

printf '\ndevdiff benchmark: upper with %d files + %d whiteouts, lower with 10000 files; %d changes listed\n' "$nfiles" "$nwh" "$changes"
printf 'median of %d interleaved runs, warm cache, %d CPUs, load average %s\n' "$ROUNDS" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)"
printf 'wall: elapsed time (the target); cpu: user+sys of the process, steadier on a shared host\n\n'
printf '%-30s %8s %8s | %-30s %8s %8s | %6s %6s\n' "mcinit devdiff" "wall ms" "cpu ms" "baseline" "wall ms" "cpu ms" "wall" "cpu"
row() { # label-a key-a label-b key-b
	local a b ac bc
	a=$(tr ' ' '\n' <<<"${t[$2]}" | grep . | median)
	b=$(tr ' ' '\n' <<<"${t[$4]}" | grep . | median)
	ac=$(tr ' ' '\n' <<<"${c[$2]}" | grep . | median)
	bc=$(tr ' ' '\n' <<<"${c[$4]}" | grep . | median)
	printf '%-30s %8d %8d | %-30s %8d %8d | %5.2fx %5.2fx\n' "$1" "$a" "$ac" "$3" "$b" "$bc" \
		"$(awk -v a="$a" -v b="$b" 'BEGIN{print (b>0)?a/b:0}')" "$(awk -v a="$ac" -v b="$bc" 'BEGIN{print (b>0)?a/b:0}')"
}
row "listing (compares 10k files)" list_dd "find -printf (lstat only)" list_find
row "-tar export" tar_dd "tar --xattrs -c of the upper" tar_gnu
[[ -z $rss ]] || printf '\nmcinit devdiff listing: max RSS %d KiB\n' "$rss"
printf 'tar sizes: devdiff %s bytes, GNU tar %s bytes\n' "$(stat -c %s "$work/out.tar")" "$(stat -c %s "$work/gnu.tar")"
