#!/usr/bin/env bash
# bench/tpm.sh: /init's TPM commands on a production boot, against the
# events it measures (the baseline: one TPM2_PCR_Extend per event is the
# least any measured boot sends). The boots are cmds/init's pipeline tests
# on the go-tpm simulator; e2e/attest_test.go (TestAttestRollback) asserts
# the same counts on a real boot from swtpm's command log.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(${GO:-go} test -count=1 -run '^TestBootTPMCommands$' -v ./cmds/init/)
printf '| production boot                          | TPM commands | events | over events | target        |\n'
printf '|------------------------------------------|--------------|--------|-------------|---------------|\n'
grep -o 'bench|.*' <<<"$out" | while IFS='|' read -r _ name total events _; do
	over=$((total - events))
	verdict="<= +2 met"
	((over <= 2)) || verdict="<= +2 MISSED"
	printf '| %-40s | %12d | %6d | %+11d | %-13s |\n' "$name" "$total" "$events" "$over" "$verdict"
done
