#!/usr/bin/env bash
# fuzz.sh [TIME] [PKG-PATTERN...]: run every Fuzz target of the module (or
# of the given packages) with `go test -fuzz` for TIME each (default 30s).
# Targets are discovered with `go test -list`, so new ones are picked up
# without editing this script. FUZZPARALLEL sets the workers (default 1, to
# share the machine). Crashers land in the package's testdata/fuzz/ and then
# run as ordinary cases in `go test`.
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
		out=$("$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" \
			-parallel "${FUZZPARALLEL:-1}" "$pkg" 2>&1) && { echo "$out"; break; }
		echo "$out"
		if [ $try = 1 ] && grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
			echo "fuzz.sh: $name: engine deadline hiccup, no crasher; retrying once"
			continue
		fi
		failed+=("$pkg $name")
		break
	done
done
if [ ${#failed[@]} -gt 0 ]; then
	printf 'FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "all ${#targets[@]} fuzz targets ran $fuzztime without a failure"
