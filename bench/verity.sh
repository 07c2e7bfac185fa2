#!/usr/bin/env bash
# Benchmark `mcinit verity format` against `veritysetup format` side by side:
# the same image, runs interleaved (the order alternates), medians printed.
#   SIZE_MIB=1024 RUNS=5 bench/verity.sh
# MCINIT=path uses a prebuilt mcinit; otherwise it is built from this tree.
# Throughput counts data bytes over wall time; CPU is user+sys seconds;
# peak RSS is /usr/bin/time's maximum resident set size.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-5}
command -v veritysetup >/dev/null || { echo "veritysetup missing (Debian cryptsetup-bin)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing (Debian time)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/verity-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [ -z "${MCINIT:-}" ]; then
	go build -o "$work/mcinit" ./cmds/mcinit
	MCINIT=$work/mcinit
fi
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$work/data"
cat "$work/data" >/dev/null # into the page cache, for every tool alike
salt=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
uuid=01234567-89ab-4def-8123-456789abcdef
tools=(veritysetup mcinit mcinit-1core)

run() { # tool run -> "wall cpu rss_kb" appended to $work/<tool>
	local tool=$1 hash=$work/hash.$1 cmd
	rm -f "$hash"
	case $tool in
	veritysetup) cmd=(veritysetup format) ;;
	mcinit) cmd=("$MCINIT" verity format) ;;
	mcinit-1core) cmd=(env GOMAXPROCS=1 "$MCINIT" verity format) ;;
	esac
	/usr/bin/time -o "$work/time" -f "%e %U %S %M" "${cmd[@]}" --salt "$salt" --uuid "$uuid" \
		"$work/data" "$hash" >"$work/out.$tool"
	read -r wall user sys rss <"$work/time"
	awk -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" 'BEGIN {print w, u + s, r}' >>"$work/res.$tool"
	grep '^Root hash:' "$work/out.$tool" | awk '{print $3}' >"$work/root.$tool"
}

for ((i = 0; i < RUNS; i++)); do
	if ((i % 2 == 0)); then order=("${tools[@]}"); else order=(mcinit-1core mcinit veritysetup); fi
	for t in "${order[@]}"; do run "$t"; done
	cmp -s "$work/hash.veritysetup" "$work/hash.mcinit" || { echo "hash devices differ" >&2; exit 1; }
	cmp -s "$work/root.veritysetup" "$work/root.mcinit" || { echo "root hashes differ" >&2; exit 1; }
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
base_wall=$(cut -d' ' -f1 "$work/res.veritysetup" | median)
base_cpu=$(cut -d' ' -f2 "$work/res.veritysetup" | median)
echo "verity format, ${SIZE_MIB} MiB, sha256/4096, $RUNS interleaved runs each, medians; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-14s %9s %10s %12s %9s %10s %12s\n' tool wall_s MiB/s speedup cpu_s cpu_ratio peak_RSS_MiB
for t in "${tools[@]}"; do
	wall=$(cut -d' ' -f1 "$work/res.$t" | median)
	cpu=$(cut -d' ' -f2 "$work/res.$t" | median)
	rss=$(cut -d' ' -f3 "$work/res.$t" | median)
	awk -v t="$t" -v w="$wall" -v c="$cpu" -v r="$rss" -v m="$SIZE_MIB" -v bw="$base_wall" -v bc="$base_cpu" \
		'BEGIN {printf "%-14s %9.2f %10.0f %11.2fx %9.2f %9.2fx %12.1f\n", t, w, m / w, bw / w, c, bc / c, r / 1024}'
done
echo "(speedup and cpu_ratio: veritysetup's median over the tool's; >1 means faster/cheaper)"
