#!/usr/bin/env bash
# scripts/bench.sh is `make bench`: every benchmark table of the repository,
# one after the other, each printed as it finishes:
#   - bench/*.sh          side-by-side scripts (each prints its own table)
#   - go test -bench      every package with Go benchmarks
#   - go run ./bench/boot mcinit versus a busybox initramfs, booted in QEMU
#   - go run ./bench/uefiboot a signed UKI through OVMF (Secure Boot) versus
#                         direct kernel boot, same kernel and disk
# A failing section is reported and the others still run; the exit status
# is non-zero when any failed.
#
# Environment:
#   BENCH=verity,go,boot  run only these sections (script names without
#                         .sh, "go" for the Go benchmarks, "boot", "uefi")
#   BENCHTIME=1s          -benchtime of the Go benchmarks
#   BOOT_ROUNDS=5         boots per side in the boot benchmark
#   UEFI_ROUNDS=3         boots per side in the firmware benchmark
#   MCINIT_E2E_DIR=DIR    keep and reuse the boot benchmark's built inputs
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
only=",${BENCH:-},"
failed=()

want() { [[ $only == ",," || $only == *",$1,"* ]]; }

section() { # name command...
	local name=$1
	shift
	want "$name" || return 0
	printf '\n===== %s =====\n' "$name"
	local t0=$SECONDS
	if "$@"; then
		printf -- '----- %s: done in %ds\n' "$name" $((SECONDS - t0))
	else
		printf -- '----- %s: FAILED (exit %d) after %ds\n' "$name" $? $((SECONDS - t0))
		failed+=("$name")
	fi
}

for s in bench/*.sh; do
	[[ -x $s ]] || continue
	section "$(basename "$s" .sh)" "$s"
done

gobench() {
	# Packages declaring Go benchmarks (bench/*.sh may run some of them
	# again with their own settings and table).
	local pkgs
	pkgs=$(grep -rl --include='*_test.go' '^func Benchmark' . | xargs -r -n1 dirname | sort -u)
	[[ -n $pkgs ]] || { echo "no Go benchmarks"; return 0; }
	# shellcheck disable=SC2086
	$GO test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-1s}" $pkgs
}
section go gobench

section boot $GO run ./bench/boot -rounds "${BOOT_ROUNDS:-5}"

section uefi $GO run ./bench/uefiboot -rounds "${UEFI_ROUNDS:-3}"

if ((${#failed[@]})); then
	printf '\nbenchmarks FAILED: %s\n' "${failed[*]}"
	exit 1
fi
printf '\nall benchmarks done\n'
