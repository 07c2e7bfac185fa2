package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcinit/mcinit/boot/boottest"
	"github.com/mcinit/mcinit/policy"
)

// TestRescueShell: the rescue shell through the whole pipeline. It is
// offered after a refusal in development and on mcinit.shell in
// development, each bounded by the policy's rescue_timeout; never in
// production, never under a policy without rescue_shell, never after a
// refusal that came before the decision. A refusal stays one line,
// measured before the shell starts.
func TestRescueShell(t *testing.T) {
	const dev = "mcinit.profile=development"
	devDevice := []policy.Device{{Board: "qemu-x86_64", DeviceID: devSerial}}
	withShell := pol{dev: &policy.Development{AllowDevices: devDevice, RescueShell: true, RescueTimeout: 10}}.String()
	defaultWait := pol{dev: &policy.Development{AllowDevices: devDevice, RescueShell: true}}.String()
	noShell := pol{dev: &policy.Development{AllowDevices: devDevice}}.String()
	const noInit = "no executable /sbin/init in the new root: no such file or directory"
	for _, tc := range []struct {
		name    string
		c       bootCase
		refusal string   // "" : the boot reaches switch_root
		shell   bool     // the shell was started
		lines   []string // console lines that must be there, in this order
		actions []string // the last actions, in order
	}{
		{"refusal in development", bootCase{policy: withShell, serial: devSerial, line: dev, noInit: true}, noInit, true,
			[]string{"mcinit: refusing to boot: " + noInit,
				"mcinit: warning: development rescue shell (boot refused): exit it to halt; it is ended after 10s",
				"mcinit: rescue shell exited"},
			[]string{"overlay ", "shell"}},
		{"refusal in production", bootCase{policy: withShell, serial: prodSer, noInit: true}, noInit, false,
			[]string{"mcinit: refusing to boot: " + noInit}, []string{"mount-ro "}},
		{"refusal in development without rescue_shell", bootCase{policy: noShell, serial: devSerial, line: dev, noInit: true}, noInit, false,
			[]string{"mcinit: refusing to boot: " + noInit}, []string{"overlay "}},
		{"refusal before the decision", bootCase{policy: withShell, serial: devSerial, line: dev, vendor: "ACME"}, "board generic-x86_64: this device matches no board file", false,
			nil, nil},
		{"mcinit.shell in development", bootCase{policy: defaultWait, serial: devSerial, line: dev + " mcinit.shell"}, "", true,
			[]string{"mcinit: handoff: development profile, board qemu-x86_64, root overlay lower=verity:A upper=tmpfs, …",
				"mcinit: warning: development rescue shell (mcinit.shell requested): exit it to continue the boot; it is ended after 5m0s",
				"mcinit: rescue shell exited"},
			[]string{"handoff development", "shell", "switch /newroot " + debInit}},
		{"mcinit.shell in production", bootCase{policy: withShell, serial: prodSer, line: "mcinit.shell"}, "", false,
			[]string{"mcinit: warning: mcinit.shell ignored: only honoured in development"},
			[]string{"handoff production", "lock-modules", "switch /newroot " + debInit}},
		{"mcinit.shell without rescue_shell", bootCase{policy: noShell, serial: devSerial, line: dev + " mcinit.shell"}, "", false,
			[]string{"mcinit: warning: mcinit.shell ignored: the policy does not set rescue_shell"},
			[]string{"handoff development", "switch /newroot " + debInit}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The extends measured when the shell starts: a refusal's
			// failure event comes before it.
			var ft *boottest.FaultTPM
			extendsAtShell := -1
			tc.c.tpm = func(t *testing.T, f *boottest.FaultTPM) { ft = f }
			tc.c.shell = &boottest.Shell{ExitAfter: time.Millisecond, OnStart: func() { extendsAtShell = ft.Count(boottest.CCPCRExtend) }}
			r := runBoot(t, tc.c)
			if got := refusal(r); !strings.HasPrefix(got, tc.refusal) || (tc.refusal == "") != (got == "") {
				t.Fatalf("refusal %q, want %q", got, tc.refusal)
			}
			if got := tc.c.shell.Started(); got != tc.shell {
				t.Errorf("shell started: %v, want %v", got, tc.shell)
			}
			n := 0
			for _, l := range r.log.Lines {
				if strings.HasPrefix(l, "mcinit: refusing to boot: ") {
					n++
				}
				if !tc.shell && strings.Contains(l, "rescue shell") {
					t.Errorf("no shell, yet the console says %q", l)
				}
			}
			if want := map[bool]int{true: 0, false: 1}[tc.refusal == ""]; n != want {
				t.Errorf("%d refusal lines, want %d", n, want)
			}
			at := 0
			for _, want := range tc.lines {
				i := slices.IndexFunc(r.log.Lines[at:], func(l string) bool {
					if p, ok := strings.CutSuffix(want, "…"); ok {
						return strings.HasPrefix(l, p)
					}
					return l == want
				})
				if i < 0 {
					t.Fatalf("console lacks %q after line %d:\n%s", want, at, strings.Join(r.log.Lines, "\n"))
				}
				at += i + 1
			}
			if len(tc.actions) > 0 {
				acts := r.env.Actions
				if len(acts) < len(tc.actions) {
					t.Fatalf("actions %q", acts)
				}
				for i, want := range tc.actions {
					if got := acts[len(acts)-len(tc.actions)+i]; !strings.HasPrefix(got, want) {
						t.Errorf("actions end %q, want %q", acts[len(acts)-len(tc.actions):], tc.actions)
						break
					}
				}
			}
			if tc.refusal != "" && tc.shell {
				// The failure event was measured before the shell ran (the
				// shell could extend more, never undo it): policy, key
				// set, board, decision, root, failure.
				if extendsAtShell != 6 || ft.Count(boottest.CCPCRExtend) != 6 {
					t.Errorf("%d extends when the shell started, %d in all; want 6 and 6", extendsAtShell, ft.Count(boottest.CCPCRExtend))
				}
			}
		})
	}
}
