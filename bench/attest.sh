#!/usr/bin/env bash
# attest.sh: verifications per second per core, measured side by side in
# one run (-cpu 1: one core):
#   - attest.Verify of a realistic PCR-13-only quote + event log against one
#     bare ECDSA P-256 signature check of the same quote (issue 13);
#   - a full-chain attest.Verify (a real OVMF firmware log: Secure Boot,
#     PCR 4 UKI, PCR 11 sections, PCRs 0-7, 11, 12, 13 quoted) against the
#     PCR-13-only one (issue 10: at most 2x).
# Times are CPU time per op (getrusage): on a shared machine wall time
# mostly measures the other tenants; the ratios are what is stable.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-5}
out=$(${GO:-go} test -run '^$' -bench 'Verify|BaselineECDSA' -benchtime "${BENCHTIME:-1s}" -count "$count" -cpu 1 ./bench/attestbench/)
echo "$out" | awk -v n="$count" '
/^Benchmark/ {
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	for (i = 2; i <= NF; i++) if ($(i+1) == "cpu-ns/op") { sum[name] += $i; cnt[name]++ }
}
END {
	v = sum["Verify"] / cnt["Verify"]; c = sum["VerifyChain"] / cnt["VerifyChain"]; e = sum["BaselineECDSA"] / cnt["BaselineECDSA"]
	printf "| measurement (1 core, CPU time, mean of %d runs) | µs/op | per second |\n", n
	printf "|---|---:|---:|\n"
	printf "| baseline: one ECDSA P-256 signature check | %.1f | %.0f |\n", e / 1000, 1e9 / e
	printf "| attest.Verify, PCR 13 only: quote + 4-bank log, 6 events | %.1f | %.0f |\n", v / 1000, 1e9 / v
	printf "| attest.Verify, full chain: + OVMF log, PCRs 0-7, 11, 12 | %.1f | %.0f |\n", c / 1000, 1e9 / c
	printf "| ratio PCR-13-only / ECDSA baseline | %.2f× | |\n", v / e
	printf "| ratio full chain / PCR-13-only (target ≤ 2×) | %.2f× | |\n", c / v
}'
