#!/usr/bin/env bash
# attest.sh: verifications per second per core of a realistic quote + event
# log (attest.Verify), against one bare ECDSA P-256 signature check of the
# same quote, measured side by side in one run (-cpu 1: one core).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-5}
out=$(${GO:-go} test -run '^$' -bench 'Verify|BaselineECDSA' -benchtime "${BENCHTIME:-1s}" -count "$count" -cpu 1 ./bench/attestbench/)
echo "$out" | awk -v n="$count" '
/^Benchmark/ {
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	for (i = 2; i <= NF; i++) if ($(i+1) == "ns/op") { sum[name] += $i; cnt[name]++ }
}
END {
	v = sum["Verify"] / cnt["Verify"]; e = sum["BaselineECDSA"] / cnt["BaselineECDSA"]
	printf "| measurement (1 core, mean of %d runs) | µs/op | per second |\n", n
	printf "|---|---:|---:|\n"
	printf "| baseline: one ECDSA P-256 signature check | %.1f | %.0f |\n", e / 1000, 1e9 / e
	printf "| attest.Verify: quote + 4-bank log, 6 events | %.1f | %.0f |\n", v / 1000, 1e9 / v
	printf "| ratio Verify / baseline | %.2f× | |\n", v / e
}'
