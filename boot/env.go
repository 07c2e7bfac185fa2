package boot

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/dmverity"
	"github.com/mcinit/mcinit/handoff"
	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/rootfs"
)

// Env is the world /init reads and acts on. Every method is a mechanism;
// the decisions are the stages' job.
type Env interface {
	// Image is the initramfs (policy, keys, boards, grants), read-only.
	Image() fs.FS
	// Cmdline is the kernel command line text (untrusted).
	Cmdline() (string, error)
	// Identity reads the board identity from firmware (untrusted).
	Identity() (identity.Identity, error)
	// LoadModules loads kernel modules and their dependencies.
	LoadModules(mods []boards.Module) error
	// OpenTPM opens the TPM; the pipeline bounds every command with a deadline.
	OpenTPM() (transport.TPMCloser, error)
	// PCRBanks lists the TPM's active banks of pcr as the kernel knows
	// them, without a TPM command; an error makes the pipeline ask the
	// TPM (TPM2_GetCapability).
	PCRBanks(pcr int) ([]crypto.Hash, error)
	// Disks reaches the block devices.
	Disks() Disks
	// FindInit resolves path inside root (symlinks stay inside root) and
	// checks it is an executable regular file; it returns the path to exec
	// after the switch.
	FindInit(root, path string) (string, error)
	// WriteHandoff leaves the summary and the event log in /run/mcinit.
	WriteHandoff(s handoff.Summary, eventLog []byte) error
	// LockModules forbids module loading until the next boot.
	LockModules() error
	// SwitchRoot makes root the root and execs initPath (resolved by
	// FindInit) as argv0; it returns only on failure.
	SwitchRoot(root, initPath, argv0 string, env []string) error
	// StartShell starts the rescue shell on the console, in a session of
	// its own; ErrNoShell when the image carries none. The pipeline
	// (RunShell) bounds how long it runs.
	StartShell() (Shell, error)
}

// Shell is a running rescue shell.
type Shell interface {
	// Wait returns once the shell has exited.
	Wait() error
	// Kill ends the shell and every process of its session.
	Kill() error
}

// ErrNoShell is StartShell's error for an image without a shell
// (production-only images carry none).
var ErrNoShell = errors.New("no shell in this image")

// Disks is the block-device side of root setup.
type Disks interface {
	// Partitions lists the GPT partitions visible now.
	Partitions() ([]rootfs.BlockPartition, error)
	// ReadPartition reads up to limit bytes from the start of p (the raw
	// grants partition: no filesystem is mounted for it).
	ReadPartition(p rootfs.BlockPartition, limit int) ([]byte, error)
	// OpenVerity maps a dm-verity device and returns its path.
	OpenVerity(name, dataDev, hashDev string, want dmverity.Expected, onCorruption dmverity.OnCorruption) (string, error)
	// MountReadOnly mounts dev on target read-only and returns its fstype.
	MountReadOnly(dev, target string) (string, error)
	// MountTmpfs mounts an empty tmpfs on target.
	MountTmpfs(target string) error
	// MountUpper mounts the development upper partition on target,
	// formatting it only when it is blank and dev.CreateUpper is set.
	MountUpper(p rootfs.BlockPartition, dev policy.Development, target string) error
	// Overlay mounts an overlay of lower and upperBase/{upper,work} on target.
	Overlay(lower, upperBase, target string) error
}

// Logger is the console: early.Logger in /init.
type Logger interface {
	Printf(format string, a ...any)
	Warnf(format string, a ...any)
	Critf(format string, a ...any)
	Debugf(format string, a ...any)
	SetDebug(on bool)
}

// Console logs and keeps the warnings for the handoff summary.
type Console struct {
	Logger
	Warnings []string
}

// Warn prints a warning and keeps it.
func (c *Console) Warn(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	c.Warnings = append(c.Warnings, msg)
	c.Warnf("warning: %s", msg)
}
