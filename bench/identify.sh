#!/bin/bash
# bench/identify.sh: identify + match over every device tree in Debian's
# full arm64 kernel package (577 real vendor trees), per tree, against a
# baseline measured side by side in the same run: parsing the same blob
# with u-root's dt.ReadFDT alone (which identify uses underneath). Both
# are timed on every tree, alternating which goes first. Prints a table.
#
#   bench/identify.sh [COUNT]   (COUNT benchmark runs, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-3}
go test ./boards -run '^$' -bench '^BenchmarkDebianDTBs$' -benchtime 2x -count "$count" | awk -v count="$count" '
/^BenchmarkDebianDTBs/ {
	for (i = 2; i <= NF; i++) {
		if ($i == "trees") trees = $(i-1)
		if ($i == "base-µs/tree") { b = $(i-1); sb += b; if (!nb++ || b < mb) mb = b }
		if ($i == "ours-µs/tree") { o = $(i-1); so += o; if (!no++ || o < mo) mo = o }
	}
}
END {
	if (!nb || !no) { print "benchmark output missing" > "/dev/stderr"; exit 1 }
	printf "identify + match over %d Debian arm64 device trees (%d runs)\n\n", trees, count
	printf "| %-34s | %13s | %13s | %7s |\n", "per tree", "mean µs", "best µs", "ratio"
	printf "|%s|%s|%s|%s|\n", "------------------------------------", "---------------", "---------------", "---------"
	printf "| %-34s | %13.1f | %13.1f | %6.2fx |\n", "baseline: dt.ReadFDT (parse only)", sb / nb, mb, 1
	printf "| %-34s | %13.1f | %13.1f | %6.2fx |\n", "identity.FromDTB + boards.Match", so / no, mo, (so / no) / (sb / nb)
}'
