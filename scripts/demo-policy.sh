#!/usr/bin/env bash
# demo-policy.sh: the signed-policy round trip with the built out/mcinit:
# make keys (one with openssl, to show interop), write and sign a policy
# with a 2-of-3 threshold, sign a development grant for one device, then
# dry-run the boot decision for several board identities and command lines.
set -euo pipefail
cd "$(dirname "$0")/.."
MCINIT=${MCINIT:-$PWD/out/mcinit}
if [ -z "${MCINIT_NO_BUILD:-}" ]; then
	${GO:-go} build -o "$MCINIT" ./cmds/mcinit # cheap when up to date
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "1. Three signing keys (private keys stay here; only public keys ship)"
run "$MCINIT" keygen -type ed25519 -out release-a
run "$MCINIT" keygen -type ecdsa-p256 -out release-b
if command -v openssl >/dev/null; then
	run openssl genpkey -algorithm ed25519 -out release-c.key
	run openssl pkey -in release-c.key -pubout -out release-c.pub
else
	run "$MCINIT" keygen -out release-c
fi
mkdir keys
for k in a b c; do cp "release-$k.pub" "keys/release-$k.pem"; done
echo 'threshold = 2' >keys/keyset.toml
echo "keys/: $(ls keys | tr '\n' ' ')  (keyset.toml: threshold = 2)"

say "2. A policy covering two QEMU boards; unknown machines (generic boards) refused"
cat >policy.toml <<'POLICY'
format = 1
version = 7
boards = ["qemu-x86_64", "qemu-aarch64-virt"]
allow_unknown_boards = false

[production]
verity_error = "restart"
rollback_nv_index = 0x01500016

[[production.root]]
name = "A"
root_hash = "4f2d9c1e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6"
data_blocks = 16384

[development]
allow_boards = ["qemu-aarch64-virt"]
allow_grants = true
rescue_shell = true

[[development.allow_devices]]
board = "qemu-x86_64"
device_id = "LAB-0001"
POLICY
cat policy.toml

say "3. Sign: one signature is not enough for a 2-of-3 key set"
run "$MCINIT" policy sign -key release-a.key policy.toml
run "$MCINIT" policy verify -keys keys policy.toml || echo "(exit $?: rejected, as it should be)"
if command -v openssl >/dev/null; then
	echo "# the third key signs with openssl; mcinit turns the raw signature into a line"
	run openssl pkeyutl -sign -rawin -inkey release-c.key -in policy.toml -out c.sig
	run "$MCINIT" policy sign -raw-signature c.sig -pubkey release-c.pub policy.toml
else
	run "$MCINIT" policy sign -key release-c.key policy.toml
fi
run "$MCINIT" policy verify -keys keys policy.toml
echo "# policy.toml.sig:"
cat policy.toml.sig

say "4. A development grant for one x86 unit (serial SN-0042), signed by two keys"
run "$MCINIT" grant -board qemu-x86_64 -device SN-0042 -min-version 7 -max-version 9 -key release-a.key -out sn-0042.toml
run "$MCINIT" grant sign -key release-b.key sn-0042.toml
run "$MCINIT" grant verify -keys keys sn-0042.toml

say "5. Boot decisions (mcinit decide, the same code /init runs)"
cp policy.toml tampered.toml
sed -i 's/allow_boards = \["qemu-aarch64-virt"\]/allow_boards = ["qemu-aarch64-virt", "qemu-x86_64"]/' tampered.toml
cp policy.toml.sig tampered.toml.sig
scenario() {
	local title=$1
	shift
	local out rc=0
	out=$("$MCINIT" decide -keys keys "$@" 2>/dev/null) || rc=$?
	local first
	if [ $rc -eq 0 ]; then
		first=$(awk '$1 == "facts" { $1 = ""; print substr($0, 2) }' <<<"$out")
	else
		first=$(head -n1 <<<"$out")
	fi
	printf '\n%-62s exit %d\n    %s\n' "$title" "$rc" "$first"
	grep '^warning:' <<<"$out" | sed 's/^/    /' || true
}
P=(-policy policy.toml -floor 7)
scenario "x86 unit, no flag" "${P[@]}" -board qemu-x86_64 -device SN-0001 -cmdline "console=ttyS0 quiet"
scenario "x86 unit asks for development (no permission)" "${P[@]}" -board qemu-x86_64 -device SN-0001 -cmdline "mcinit.profile=development"
scenario "x86 lab unit listed in the policy" "${P[@]}" -board qemu-x86_64 -device LAB-0001 -cmdline "mcinit.profile=development"
scenario "x86 unit with a signed grant" "${P[@]}" -board qemu-x86_64 -device SN-0042 -grant sn-0042.toml -cmdline 'mcinit.profile="development" mcinit.shell'
scenario "aarch64 virt board (development allowed for the board)" "${P[@]}" -board qemu-aarch64-virt -device 1 -cmdline "mcinit.profile=development"
scenario "aarch64: conflicting repeated flags" "${P[@]}" -board qemu-aarch64-virt -cmdline "mcinit.profile=development mcinit.profile=production"
scenario "aarch64: malformed value" "${P[@]}" -board qemu-aarch64-virt -cmdline "mcinit.profile=dev"
scenario "aarch64: the flag after -- belongs to init, not mcinit" "${P[@]}" -board qemu-aarch64-virt -cmdline "ro -- mcinit.profile=development"
scenario "unknown x86 machine (generic board, not allowed)" "${P[@]}" -board generic-x86_64 -cmdline "mcinit.profile=development"
scenario "board the policy does not cover" "${P[@]}" -board rpi4 -cmdline ""
scenario "rollback: TPM floor is 8, policy is version 7" -policy policy.toml -floor 8 -board qemu-x86_64
scenario "tampered policy (x86 added to allow_boards)" -policy tampered.toml -floor 7 -board qemu-x86_64 -cmdline "mcinit.profile=development"
echo
echo "exit 0 = boots with the profile shown; exit 3 = /init would print the refusal line and halt."
