//go:build linux

package dmverity

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/anatol/devmapper.go"
	"golang.org/x/sys/unix"

	"github.com/mcinit/mcinit/verity"
)

// MapperDir is where Open creates the device node (devtmpfs only makes
// /dev/dm-N; udev, which would add the name, does not run in /init).
const MapperDir = "/dev/mapper"

// Open maps dataDev and hashDev as the read-only dm-verity device
// /dev/mapper/<name>, checked against want (from the signed policy), with
// the policy's reaction to corruption, and returns the node's path. It
// reads the first and last data blocks through the new device; if that
// fails the device is removed again.
func Open(name, dataDev, hashDev string, want Expected, onCorruption OnCorruption) (string, error) {
	p, err := Prepare(name, dataDev, hashDev, want, onCorruption)
	if err != nil {
		return "", err
	}
	return p.Activate()
}

// Activate creates the device-mapper device, its node under MapperDir,
// and proves the mapping by reading through it.
//
// The probe reads run on a table without the corruption flag (reads fail
// with EIO): a corrupted first or last block under restart_on_corruption
// would otherwise reboot the machine from inside /init on every boot. Once
// the probes pass, the policy's table replaces it (suspend, load, resume).
func (p *Plan) Activate() (string, error) {
	probe := p.Table
	probe.Params = nil
	if err := devmapper.CreateAndLoad(p.Name, "mcinit-verity-"+p.Name, devmapper.ReadOnlyFlag, probe); err != nil {
		return "", fmt.Errorf("dm-verity %s: loading table %q: %w", p.Name, TableString(probe), err)
	}
	path, err := p.activate()
	if err == nil && len(p.Table.Params) > 0 {
		err = p.reload()
	}
	if err != nil {
		if path != "" {
			_ = os.Remove(path)
		}
		if rerr := devmapper.Remove(p.Name); rerr != nil {
			err = fmt.Errorf("%w (and removing the device: %v)", err, rerr)
		}
		return "", err
	}
	return path, nil
}

func (p *Plan) activate() (string, error) {
	info, err := devmapper.InfoByName(p.Name)
	if err != nil {
		return "", fmt.Errorf("dm-verity %s: device info: %w", p.Name, err)
	}
	dev := unix.Mkdev(unix.Major(info.DevNo), unix.Minor(info.DevNo))
	path := filepath.Join(MapperDir, p.Name)
	if err := mknod(path, dev); err != nil {
		return "", fmt.Errorf("dm-verity %s: %w", p.Name, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return path, fmt.Errorf("dm-verity %s: %w", p.Name, err)
	}
	defer f.Close()
	want := int64(p.Layout.DataBlocks) * int64(p.Layout.DataBlockSize)
	if size, err := verity.DeviceSize(f); err != nil || size != want {
		return path, fmt.Errorf("dm-verity %s: device size %d (%v), want %d", p.Name, size, err, want)
	}
	// A wrong geometry or root hash still loads; only reads fail (EIO).
	bs := int64(p.Layout.DataBlockSize)
	buf := make([]byte, bs)
	for _, blk := range []int64{0, int64(p.Layout.DataBlocks) - 1} {
		if _, err := f.ReadAt(buf, blk*bs); err != nil {
			return path, fmt.Errorf("dm-verity %s: reading data block %d through the device failed (root hash mismatch or corrupted image): %w", p.Name, blk, err)
		}
	}
	return path, nil
}

// reload swaps in the policy's table, with its corruption behaviour.
func (p *Plan) reload() error {
	if err := devmapper.Suspend(p.Name); err != nil {
		return fmt.Errorf("dm-verity %s: suspend: %w", p.Name, err)
	}
	if err := devmapper.Load(p.Name, devmapper.ReadOnlyFlag, p.Table); err != nil {
		_ = devmapper.Resume(p.Name)
		return fmt.Errorf("dm-verity %s: loading table %q: %w", p.Name, p.String(), err)
	}
	if err := devmapper.Resume(p.Name); err != nil {
		return fmt.Errorf("dm-verity %s: resume: %w", p.Name, err)
	}
	return nil
}

// mknod creates a block device node for dev at path, replacing a stale one.
func mknod(path string, dev uint64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var st unix.Stat_t
	switch err := unix.Lstat(path, &st); {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == dev:
		return nil
	case err == nil:
		if err := os.Remove(path); err != nil {
			return err
		}
	case !errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(dev)); err != nil {
		return fmt.Errorf("mknod %s: %w", path, err)
	}
	return nil
}

// Close removes the device-mapper device name and its node under MapperDir
// (for a failed mount, or before trying another root).
func Close(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(MapperDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := devmapper.Remove(name); err != nil {
		return fmt.Errorf("dm-verity %s: remove: %w", name, err)
	}
	return nil
}
