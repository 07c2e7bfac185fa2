#!/usr/bin/env bash
# fuzz.sh [TIME] [PKG-PATTERN...]: run every Fuzz target of the module (or
# of the given packages) with `go test -fuzz` for TIME each (default 30s).
# Targets are discovered with `go test -list`, so new ones are picked up
# without editing this script. FUZZPARALLEL sets the workers per target
# (default 1, to share the machine); FUZZJOBS how many targets run at once
# (default 1). With FUZZJOBS>1 each target still gets TIME of wall clock but
# shares the cores, so the exec counts, not TIME, say how hard each was
# fuzzed. Crashers land in the package's testdata/fuzz/ and then run as
# ordinary cases in `go test`.
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
jobs=${FUZZJOBS:-1}
minexecs=${FUZZMINEXECS:-100}

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

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fuzz_one PKG NAME DIR: fuzz one target; leaves its output in DIR/out, its
# exec count in DIR/execs and "ok" or the failure in DIR/result.
fuzz_one() {
	local pkg=$1 name=$2 dir=$3 out execs ok try
	if [ "$name" = - ]; then
		echo "$pkg does not build or list its tests" >"$dir/out"
		echo "$pkg (build)" >"$dir/result"
		return
	fi
	# Go's fuzz engine sometimes ends a short run with a bare "context
	# deadline exceeded" and no crasher (a worker slow to answer when the
	# time is up); that run is retried once, a real crash never is.
	for try in 1 2; do
		ok=1
		out=$("$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" \
			-fuzzminimizetime "${FUZZMINIMIZETIME:-10s}" \
			-parallel "${FUZZPARALLEL:-1}" "$pkg" 2>&1) || ok=0
		printf '%s\n' "$out" >>"$dir/out"
		# The engine's last progress line carries the total: "execs: N".
		execs=$(grep -o 'execs: [0-9]*' <<<"$out" | tail -n1 | awk '{print $2}' || true)
		echo "${execs:-0}" >"$dir/execs"
		if [ $ok = 1 ]; then
			if [ "${execs:-0}" -lt "$minexecs" ]; then
				echo "$pkg $name (only ${execs:-0} execs in $fuzztime, minimum $minexecs)" >"$dir/result"
			else
				echo ok >"$dir/result"
			fi
			return
		fi
		if [ $try = 1 ] && grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
			echo "fuzz.sh: $name: engine deadline hiccup, no crasher; retrying once" >>"$dir/out"
			continue
		fi
		echo "$pkg $name" >"$dir/result"
		return
	done
}

printf 'fuzzing %d targets for %s each, %s at a time\n' "${#targets[@]}" "$fuzztime" "$jobs"
i=0
for t in "${targets[@]}"; do
	i=$((i + 1))
	mkdir "$work/$i"
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
	fuzz_one "${t% *}" "${t#* }" "$work/$i" &
done
wait

failed=()
summary=()
i=0
for t in "${targets[@]}"; do
	i=$((i + 1))
	printf '== %s %s\n' "${t% *}" "${t#* }"
	cat "$work/$i/out"
	result=$(cat "$work/$i/result" 2>/dev/null || echo "${t} (no result)")
	summary+=("$(printf '%-12s %-28s %-40s' "$(cat "$work/$i/execs" 2>/dev/null || echo 0)" "${t#* }" "${t% *}")")
	[ "$result" = ok ] || failed+=("$result")
done
printf '\n%-12s %-28s %s\n' execs target package
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "all ${#targets[@]} fuzz targets ran $fuzztime without a failure"
