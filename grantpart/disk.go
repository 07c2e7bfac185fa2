package grantpart

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mcinit/mcinit/rootfs"
)

// gptRead covers the primary GPT with 512- or 4096-byte sectors and a
// standard 128-entry array.
const gptRead = 2*4096 + 128*128 + 4096

// DiskPartition finds the one partition named Label on the disk image or
// block device at path. It tries 512- and 4096-byte sectors.
func DiskPartition(path string) (rootfs.Partition, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return rootfs.Partition{}, 0, err
	}
	defer f.Close()
	buf := make([]byte, gptRead)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return rootfs.Partition{}, 0, fmt.Errorf("%s: %w", path, err)
	}
	var perr error
	for _, sector := range []int{512, 4096} {
		parts, err := rootfs.ParseGPT(buf[:n], sector)
		if err != nil {
			perr = err
			continue
		}
		var hits []rootfs.Partition
		for _, p := range parts {
			if p.Label == Label {
				hits = append(hits, p)
			}
		}
		switch len(hits) {
		case 0:
			return rootfs.Partition{}, 0, fmt.Errorf("%s: no partition named %s (make one with mcinit image -grants, or sgdisk -c N:%s)", path, Label, Label)
		case 1:
			return hits[0], sector, nil
		default:
			return rootfs.Partition{}, 0, fmt.Errorf("%s: %d partitions named %s (numbers %d and %d): keep one", path, len(hits), Label, hits[0].Number, hits[1].Number)
		}
	}
	return rootfs.Partition{}, 0, fmt.Errorf("%s: %v", path, perr)
}

// WriteDisk replaces the contents of the disk's grants partition with
// container, zero-filling the rest of the partition (up to MaxSize; any
// bytes beyond are never read), and syncs. It returns the partition.
func WriteDisk(path string, container []byte) (rootfs.Partition, error) {
	p, sector, err := DiskPartition(path)
	if err != nil {
		return p, err
	}
	size := int64(p.LastLBA-p.FirstLBA+1) * int64(sector)
	if p.LastLBA < p.FirstLBA || size < int64(len(container)) {
		return p, fmt.Errorf("%s: partition %d (%s) holds %d bytes, the grants need %d", path, p.Number, Label, max(size, 0), len(container))
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return p, err
	}
	defer f.Close()
	buf := make([]byte, min(size, MaxSize))
	copy(buf, container)
	if _, err := f.WriteAt(buf, int64(p.FirstLBA)*int64(sector)); err != nil {
		return p, fmt.Errorf("%s: writing the grants: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return p, fmt.Errorf("%s: %w", path, err)
	}
	return p, f.Close()
}

// ReadDisk reads the container of the disk's grants partition.
func ReadDisk(path string) ([]Entry, error) {
	p, sector, err := DiskPartition(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := int64(p.LastLBA-p.FirstLBA+1) * int64(sector)
	buf := make([]byte, min(size, MaxSize))
	n, err := f.ReadAt(buf, int64(p.FirstLBA)*int64(sector))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Parse(buf[:n])
}
