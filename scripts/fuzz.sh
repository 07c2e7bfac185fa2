#!/usr/bin/env bash
# fuzz.sh [TIME] [PKG-PATTERN...]: run every Fuzz target of the module (or
# of the given packages) with `go test -fuzz` for TIME each (default 30s).
# Targets are discovered with `go test -list`, so new ones are picked up
# without editing this script. FUZZPARALLEL sets the workers (default 1, to
# share the machine). Crashers land in the package's testdata/fuzz/ and then
# run as ordinary cases in `go test`.
#
# Each target's exec count is printed in a summary at the end, and a target
# that ran fewer than FUZZMINEXECS execs (default 100) fails the run: a
# fuzzer that barely runs (FuzzParseModinfo once made 4 execs in 15 s while
# the engine minimized a large seed) is not fuzzing. FUZZMINIMIZETIME
# (default 10s) bounds the minimization of each new interesting input.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-30s}
shift || true
pkgs=("${@:-./...}")
go=${GO:-go}

# `go test -list` prints the matching names of a package and then its
# "ok  <pkg> <time>" line (or "FAIL <pkg> ..."); pair them up. A package
# that does not build is kept as "<pkg> -" so the run reports it.
mapfile -t targets < <("$go" test -list '^Fuzz' "${pkgs[@]}" 2>/dev/null | awk '
	/^Fuzz/ { names[n++] = $1; next }
	/^ok[ \t]/ { for (i = 0; i < n; i++) print $2 " " names[i]; n = 0; next }
	/^FAIL[ \t]/ && $2 != "" { print $2 " -"; n = 0 }')
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz.sh: no Fuzz targets found in ${pkgs[*]}" >&2
	exit 1
fi

failed=()
summary=()
minexecs=${FUZZMINEXECS:-100}
printf 'fuzzing %d targets for %s each\n' "${#targets[@]}" "$fuzztime"
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	printf '== %s %s\n' "$pkg" "$name"
	if [ "$name" = - ]; then
		echo "fuzz.sh: $pkg does not build or list its tests" >&2
		failed+=("$pkg (build)")
		continue
	fi
	# Go's fuzz engine sometimes ends a short run with a bare "context
	# deadline exceeded" and no crasher (a worker slow to answer when the
	# time is up); that run is retried once, a real crash never is.
	for try in 1 2; do
		ok=1
		out=$("$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" \
			-fuzzminimizetime "${FUZZMINIMIZETIME:-10s}" \
			-parallel "${FUZZPARALLEL:-1}" "$pkg" 2>&1) || ok=0
		# The engine's last progress line carries the total: "execs: N".
		execs=$(grep -o 'execs: [0-9]*' <<<"$out" | tail -n1 | awk '{print $2}' || true)
		execs=${execs:-0}
		if [ $ok = 1 ]; then
			echo "$out"
			summary+=("$(printf '%-12s %-28s %-40s' "$execs" "$name" "$pkg")")
			if [ "$execs" -lt "$minexecs" ]; then
				echo "fuzz.sh: $name ran only $execs execs in $fuzztime (minimum $minexecs)" >&2
				failed+=("$pkg $name (only $execs execs)")
			fi
			break
		fi
		echo "$out"
		if [ $try = 1 ] && grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
			echo "fuzz.sh: $name: engine deadline hiccup, no crasher; retrying once"
			continue
		fi
		failed+=("$pkg $name")
		break
	done
done
printf '\n%-12s %-28s %s\n' execs target package
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "all ${#targets[@]} fuzz targets ran $fuzztime without a failure"
