//go:build linux

// Package osenv is boot.Env on the running Linux system: /proc/cmdline,
// firmware tables, /dev/tpm*, /sys/class/block, dm-verity and mounts.
package osenv

import (
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"golang.org/x/sys/unix"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/boot"
	"github.com/mcinit/mcinit/cmdline"
	"github.com/mcinit/mcinit/dmverity"
	"github.com/mcinit/mcinit/handoff"
	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/internal/boundedfile"
	"github.com/mcinit/mcinit/kmodules"
	"github.com/mcinit/mcinit/mkfs"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/rootfs"
	"github.com/mcinit/mcinit/tpmdev"
)

// Env is the running system, seen from PID 1 in the initramfs.
type Env struct {
	Log boot.Logger
}

var _ boot.Env = (*Env)(nil)

// Image is the initramfs root.
func (e *Env) Image() fs.FS { return os.DirFS("/") }

// Cmdline reads /proc/cmdline, bounded.
func (e *Env) Cmdline() (string, error) {
	b, err := boundedfile.ReadPath("/proc/cmdline", cmdline.MaxSize)
	return string(b), err
}

// Identity reads DMI or the device tree.
func (e *Env) Identity() (identity.Identity, error) { return identity.Read("/") }

// LoadModules loads modules from /lib/modules/<running release>.
func (e *Env) LoadModules(mods []boards.Module) error {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("uname: %v", err)
	}
	return kmodules.Load(path.Join("/lib/modules", unix.ByteSliceToString(uts.Release[:])), mods)
}

// OpenTPM opens /dev/tpmrm0 or /dev/tpm0.
func (e *Env) OpenTPM() (transport.TPMCloser, error) {
	t, err := tpmdev.Open()
	if err != nil {
		return nil, err
	}
	return t, nil
}

// PCRBanks reads the banks the kernel found allocated at probe time from
// /sys/class/tpm/tpm0/pcr-<alg>/<pcr> (Linux 5.12 and later).
func (e *Env) PCRBanks(pcr int) ([]crypto.Hash, error) {
	var banks []crypto.Hash
	for _, b := range []struct {
		name string
		h    crypto.Hash
	}{{"sha1", crypto.SHA1}, {"sha256", crypto.SHA256}, {"sha384", crypto.SHA384}, {"sha512", crypto.SHA512}} {
		if _, err := os.Stat(fmt.Sprintf("/sys/class/tpm/tpm0/pcr-%s/%d", b.name, pcr)); err == nil {
			banks = append(banks, b.h)
		}
	}
	if len(banks) == 0 {
		return nil, errors.New("no PCR banks in /sys/class/tpm/tpm0")
	}
	return banks, nil
}

// Disks are the kernel's block devices.
func (e *Env) Disks() boot.Disks { return disks{log: e.Log} }

// FindInit resolves init inside root (see rootfs.FindInit).
func (e *Env) FindInit(root, init string) (string, error) { return rootfs.FindInit(root, init) }

// WriteHandoff writes /run/mcinit.
func (e *Env) WriteHandoff(s handoff.Summary, eventLog []byte) error {
	return handoff.Write(handoff.Dir, s, eventLog)
}

// LockModules sets kernel.modules_disabled.
func (e *Env) LockModules() error { return handoff.LockModules() }

// SwitchRoot hands over to the real init at initPath (resolved inside
// root by FindInit), named argv0.
func (e *Env) SwitchRoot(root, initPath, argv0 string, env []string) error {
	return rootfs.SwitchRoot(root, initPath, []string{argv0}, env)
}

// rescueShell is u-root's gosh, which development images carry.
const rescueShell = "/bin/sh"

// StartShell starts the shell on the console (PID 1's stdin, which the
// kernel opened on /dev/console) as the leader of a new session with the
// console as its controlling terminal, so Kill can end all it started.
func (e *Env) StartShell() (boot.Shell, error) {
	if _, err := os.Stat(rescueShell); errors.Is(err, fs.ErrNotExist) {
		return nil, boot.ErrNoShell
	}
	cmd := exec.Command(rescueShell)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = []string{"PATH=/bbin:/bin", "HOME=/", "TERM=dumb"}
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return shell{cmd}, nil
}

type shell struct{ cmd *exec.Cmd }

func (s shell) Wait() error { return s.cmd.Wait() }

// Kill sends SIGKILL to the shell's session: with Setsid the shell's PID
// is its process group, and what it started stays in that group unless
// it made a group of its own.
func (s shell) Kill() error {
	if err := unix.Kill(-s.cmd.Process.Pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}

type disks struct{ log boot.Logger }

func (disks) Partitions() ([]rootfs.BlockPartition, error) { return rootfs.DefaultScanner().Scan() }

func (disks) OpenVerity(name, data, hash string, want dmverity.Expected, on dmverity.OnCorruption) (string, error) {
	return dmverity.Open(name, data, hash, want, on)
}

func (disks) MountReadOnly(dev, target string) (string, error) {
	return rootfs.MountReadOnly(dev, target)
}

func (disks) MountTmpfs(target string) error { return rootfs.MountTmpfs(target) }

// Overlay mounts the development root and leaves /run/mcinit/upper
// pointing at the overlay's upper directory, for devdiff.
func (disks) Overlay(lower, upperBase, target string) error {
	if err := rootfs.Overlay(lower, upperBase, target); err != nil {
		return err
	}
	if upperBase == handoff.UpperFS {
		_ = handoff.LinkUpper() // a convenience for devdiff, never a refusal
	}
	return nil
}

// upperProbe is how much of an upper partition must be zero before /init
// formats it: it covers the superblocks of every common filesystem and
// of LUKS, swap and partition tables.
const upperProbe = 1 << 20

// MountUpper mounts the persistent upper partition on target. An ext4
// superblock is mounted as is (the kernel replays its journal; a mount
// failure is refused as damage); a partition whose first MiB is all zero
// is formatted when the policy sets create_upper; anything else is
// refused, never formatted.
func (d disks) MountUpper(p rootfs.BlockPartition, dev policy.Development, target string) error {
	name := fmt.Sprintf("%q (%s)", dev.UpperPartLabel, p.Dev)
	if fstype, err := rootfs.DetectFS(p.Dev); err == nil {
		if fstype != "ext4" {
			return fmt.Errorf("development upper partition %s holds %s, not ext4", name, fstype)
		}
		if err := rootfs.MountReadWrite(p.Dev, target); err != nil {
			return fmt.Errorf("development upper partition %s is damaged: %v; repair it with e2fsck or wipe it", name, err)
		}
		return nil
	}
	f, err := os.OpenFile(p.Dev, os.O_RDWR|unix.O_EXCL, 0)
	if err != nil {
		return fmt.Errorf("development upper partition %s: %v", name, err)
	}
	defer f.Close()
	blank, err := mkfs.Blank(f, upperProbe)
	if err != nil {
		return fmt.Errorf("development upper partition %s: %v", name, err)
	}
	switch {
	case !blank:
		return fmt.Errorf("development upper partition %s is damaged or not ext4: no ext4 superblock, and its first MiB holds data; not formatting it", name)
	case !dev.CreateUpper:
		return fmt.Errorf("development upper partition %s is empty and the policy does not set create_upper", name)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("development upper partition %s: size: %v", name, err)
	}
	opt := mkfs.Ext2Options{UUID: upperUUID(p.UUID)}
	if len(dev.UpperPartLabel) <= 16 {
		opt.Label = dev.UpperPartLabel
	}
	start := time.Now()
	if err := mkfs.Ext2(f, size, opt); err != nil {
		return fmt.Errorf("development upper partition %s: formatting: %v", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("development upper partition %s: formatting: %v", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("development upper partition %s: formatting: %v", name, err)
	}
	d.log.Printf("development upper partition %s was empty: formatted ext2, %d MiB, in %v (create_upper)",
		name, size>>20, time.Since(start).Round(time.Millisecond))
	if err := rootfs.MountReadWrite(p.Dev, target); err != nil {
		return fmt.Errorf("development upper partition %s: mounting the new filesystem: %v", name, err)
	}
	return nil
}

// upperUUID derives the new filesystem's UUID from the partition's, so a
// format is reproducible and needs no entropy early in boot.
func upperUUID(part rootfs.GUID) [16]byte {
	h := sha256.Sum256(append([]byte("mcinit development upper\x00"), part[:]...))
	var u [16]byte
	copy(u[:], h[:16])
	u[6] = u[6]&0x0f | 0x50 // version 5 style: name-based
	u[8] = u[8]&0x3f | 0x80
	return u
}

// ReadPartition reads up to limit bytes from the start of the partition.
func (disks) ReadPartition(p rootfs.BlockPartition, limit int) ([]byte, error) {
	f, err := os.Open(p.Dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, limit)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return buf[:n], nil
}
