//go:build linux

// Command forger is an attacker's init, for mcinit's end-to-end tests only.
// It runs as PID 1 instead of mcinit's /init (through rdinit=, or as the
// initramfs of an attacker's UKI) and forges a production boot in mcinit's
// PCR from public inputs alone:
//
//  1. it reads the unit's identity and board with `mcinit identify`, and
//     asks `mcinit predict` for the production event sequence of the
//     policy, keys and boards that the production image carries (the image
//     is public);
//  2. it extends exactly those events, through measure.Recorder (the event
//     log writer and extender mcinit's /init uses), into the policy's PCR
//     and writes the matching event log where /init hands it over;
//  3. it execs testinit, whose actions (on the kernel command line) run
//     `mcinit attest` and print the evidence on the console.
//
// No root is mounted and no verity is checked: nothing of mcinit's boot
// ran, yet PCR 13 holds the production value. The tests assert that, and
// that the verifier rejects the evidence by the firmware chain.
//
// Files it expects in the initramfs: /forge/testinit and the guest CLI
// at /usr/bin/mcinit (where it is on the root disk); the production
// image's /etc/mcinit and /lib/modules come from the production initramfs
// it is concatenated with.
package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/handoff"
	"github.com/mcinit/mcinit/initramfs/layout"
	"github.com/mcinit/mcinit/kmodules"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/tpmdev"
)

// Paths inside the forger's initramfs.
const (
	dir      = "/forge"
	cli      = "/usr/bin/mcinit" // where AttestActions expect it
	testinit = dir + "/testinit"
	// Prediction is where the forger keeps the prediction it forged from,
	// under /run/mcinit so testinit's report carries it to the host.
	prediction = handoff.Dir + "/forged-prediction.json"
)

func main() {
	if err := forge(); err != nil {
		say("forger: FAILED: %v", err)
	}
	// testinit reports (with the evidence, or without when forging failed)
	// and powers off.
	err := unix.Exec(testinit, []string{"testinit"}, []string{"PATH=/forge:/bbin:/bin"})
	say("forger: exec %s: %v", testinit, err)
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func forge() error {
	mounts()
	if err := loadTPM(); err != nil {
		return err
	}
	var id struct{ Identity, Board string }
	out, err := run(cli, "identify", "-format", "json", "-boards", "/"+layout.BoardsDir)
	if err == nil {
		err = json.Unmarshal(out, &id)
	}
	if err != nil || id.Board == "" {
		return fmt.Errorf("identify: %v: %s", err, out)
	}
	pred, err := run(cli, "predict", "-policy", "/"+layout.PolicyFile, "-keys", "/"+layout.KeysDir,
		"-boards", "/"+layout.BoardsDir, "-board", id.Board, "-identity", id.Identity,
		"-profile", "production", "-banks", "sha1,sha256,sha384,sha512", "-format", "json")
	if err != nil {
		return fmt.Errorf("predict: %v: %s", err, pred)
	}
	var p struct {
		PCR    int               `json:"pcr"`
		Values map[string]string `json:"values"`
		Events []struct{ ID, Data string }
	}
	if err := json.Unmarshal(pred, &p); err != nil {
		return fmt.Errorf("predict output: %w", err)
	}
	tpm, err := tpmdev.Open()
	if err != nil {
		return err
	}
	defer tpm.Close()
	rec, err := measure.NewRecorder(tpm, p.PCR)
	if err != nil {
		return err
	}
	for _, e := range p.Events {
		tag, err := strconv.ParseUint(e.ID, 0, 32)
		if err != nil {
			return fmt.Errorf("event id %q: %w", e.ID, err)
		}
		if err := rec.Record(measure.Event{Tag: measure.Tag(tag), Data: []byte(e.Data)}); err != nil {
			return err
		}
	}
	// The forgery is byte-exact when the recorder's value is predict's.
	for h, v := range measure.Expected(rec.Banks(), rec.Events()) {
		if want := p.Values[measure.BankName(h)]; want != hex.EncodeToString(v) {
			return fmt.Errorf("%s: forged %x, predicted %s", measure.BankName(h), v, want)
		}
	}
	if err := rec.WriteLog(handoff.EventLog); err != nil {
		return err
	}
	if err := os.WriteFile(prediction, pred, 0o444); err != nil {
		return err
	}
	say("forger: extended the %d production events of %s (identity %s) into PCR %d",
		len(p.Events), id.Board, id.Identity, p.PCR)
	return nil
}

// mounts gives the forger (and testinit after it) /proc, /sys, /dev and
// /run.
func mounts() {
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/run", "tmpfs"},
	} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fstype, unix.MS_NOSUID, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			say("forger: mount %s: %v", m.dst, err)
		}
	}
}

// loadTPM loads the TPM driver from the production image's modules (a
// module on Debian's arm64 kernel, built in on amd64) and waits for the
// device.
func loadTPM() error {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return err
	}
	mods := path.Join("/", layout.ModulesDir, unix.ByteSliceToString(uts.Release[:]))
	if err := kmodules.Load(mods, []boards.Module{{Name: "tpm_tis"}}); err != nil {
		return fmt.Errorf("loading tpm_tis: %w", err)
	}
	for i := 0; i < 300; i++ {
		for _, d := range []string{"/dev/tpmrm0", "/dev/tpm0"} {
			if _, err := os.Stat(d); err == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("no TPM device after 30 s")
}

func run(name string, args ...string) ([]byte, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return append(out.Bytes(), errb.Bytes()...), err
	}
	return out.Bytes(), nil
}

// say writes a line to the console.
func say(format string, a ...any) {
	msg := fmt.Sprintf(format, a...) + "\n"
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		f.WriteString(msg)
		f.Close()
		return
	}
	os.Stderr.WriteString(msg)
}
