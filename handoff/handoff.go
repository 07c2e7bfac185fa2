// Package handoff leaves the booted system what it needs to know about the
// boot — /run/mcinit/ — and applies production hardening before the switch.
package handoff

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// The paths /init leaves for the booted system: the one home of the
// /run/mcinit layout (the CLI's defaults read them). /run moves into the
// new root, so the booted system finds them at the same paths.
const (
	Dir          = "/run/mcinit"
	EventLogFile = "eventlog.bin"           // in Dir
	EventLog     = Dir + "/" + EventLogFile // the TCG event log of mcinit's events
	Lower        = Dir + "/lower"           // development: the image, read-only
	UpperFS      = Dir + "/upperfs"         // development: tmpfs or the upper partition
	Upper        = Dir + "/upper"           // development: symlink to the overlay's upper directory
	upperLink    = "upperfs/upper"          // Upper's target, relative to Dir
)

// Summary is what /init tells the booted system.
type Summary struct {
	Profile       string // production | development
	Request       string
	Reason        string
	Board         string
	Identity      string
	DeviceID      string
	PolicyVersion uint64
	PolicyDigest  string // sha256 hex of the signed policy bytes
	Root          string // human description of the root that was set up
	RootHash      string
	PCR           int
	TPM           bool // measurements went into a TPM
	Warnings      []string
	InitStartNS   int64 // CLOCK_BOOTTIME when /init started
	HandoffNS     int64 // CLOCK_BOOTTIME just before switch_root
}

// Write creates dir (normally Dir) with one small file per fact, the
// human-readable summary and the event log.
func Write(dir string, s Summary, eventLog []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	files := map[string]string{
		"profile":        s.Profile + "\n",
		"board":          s.Board + "\n",
		"identity":       s.Identity + "\n",
		"policy-version": fmt.Sprintf("%d\n", s.PolicyVersion),
		"policy-digest":  s.PolicyDigest + "\n",
		"root":           s.Root + "\n",
		"pcr":            fmt.Sprintf("%d\n", s.PCR),
		"summary":        s.Text(),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o444); err != nil {
			return fmt.Errorf("handoff: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, EventLogFile), eventLog, 0o444); err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	return nil
}

// Text is the human-readable summary, one "key: value" per line.
func (s Summary) Text() string {
	kv := map[string]string{
		"profile":        s.Profile,
		"request":        s.Request,
		"reason":         s.Reason,
		"board":          s.Board,
		"identity":       s.Identity,
		"device-id":      s.DeviceID,
		"policy-version": fmt.Sprint(s.PolicyVersion),
		"policy-digest":  s.PolicyDigest,
		"root":           s.Root,
		"root-hash":      s.RootHash,
		"pcr":            fmt.Sprint(s.PCR),
		"tpm":            fmt.Sprint(s.TPM),
		"init-ms":        fmt.Sprintf("%.1f", float64(s.HandoffNS-s.InitStartNS)/1e6),
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\n", k, kv[k])
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	return b.String()
}

// LinkUpper points Upper at the overlay's upper directory under UpperFS
// (for mcinit devdiff in the booted system).
func LinkUpper() error {
	if err := os.Symlink(upperLink, Upper); err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	return nil
}

// LockModules sets kernel.modules_disabled=1: no module can be loaded until
// the next boot. It cannot be undone, which is the point.
func LockModules() error {
	if err := os.WriteFile("/proc/sys/kernel/modules_disabled", []byte("1\n"), 0); err != nil {
		return fmt.Errorf("handoff: locking module loading: %w", err)
	}
	return nil
}
