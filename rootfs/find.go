package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// BlockPartition is a GPT partition the kernel exposes as a block device.
type BlockPartition struct {
	Partition
	Disk string // "vda"
	Dev  string // "/dev/vda1"
}

// Selector picks one partition: by PARTUUID, or by label (and type when
// given). Exactly one of UUID or Label is set.
type Selector struct {
	UUID  *GUID
	Label string
	Type  *GUID
}

func (s Selector) String() string {
	switch {
	case s.UUID != nil:
		return "PARTUUID=" + s.UUID.String()
	case s.Type != nil:
		return fmt.Sprintf("PARTLABEL=%s (type %s)", s.Label, s.Type)
	default:
		return "PARTLABEL=" + s.Label
	}
}

func (s Selector) matches(p Partition) bool {
	if s.Type != nil && p.Type != *s.Type {
		return false
	}
	if s.UUID != nil {
		return p.UUID == *s.UUID
	}
	return s.Label != "" && p.Label == s.Label
}

// Scanner reads partition tables of the block devices under a sysfs root.
type Scanner struct {
	SysBlock string // "/sys/class/block"
	DevDir   string // "/dev"
}

// DefaultScanner looks at the running kernel's devices.
func DefaultScanner() Scanner { return Scanner{SysBlock: "/sys/class/block", DevDir: "/dev"} }

// gptReadSize covers the header and a standard 128-entry array with 4 KiB
// sectors (LBA 2..), which bounds what is read from an untrusted disk.
const gptReadSize = 2*4096 + maxEntries*128

// Scan lists all GPT partitions on whole disks that the kernel has created
// partition devices for.
func (s Scanner) Scan() ([]BlockPartition, error) {
	ents, err := os.ReadDir(s.SysBlock)
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	var out []BlockPartition
	for _, e := range ents {
		disk := e.Name()
		if _, err := os.Stat(filepath.Join(s.SysBlock, disk, "partition")); err == nil {
			continue // a partition, not a disk
		}
		if strings.HasPrefix(disk, "loop") || strings.HasPrefix(disk, "ram") || strings.HasPrefix(disk, "dm-") {
			continue
		}
		parts, err := s.readGPT(disk)
		if err != nil {
			continue // not GPT, empty, unreadable: not ours
		}
		kernelParts := s.partitionNames(disk)
		for _, p := range parts {
			name, ok := kernelParts[p.Number]
			if !ok {
				continue
			}
			out = append(out, BlockPartition{Partition: p, Disk: disk, Dev: filepath.Join(s.DevDir, name)})
		}
	}
	return out, nil
}

func (s Scanner) readGPT(disk string) ([]Partition, error) {
	f, err := os.Open(filepath.Join(s.DevDir, disk))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, gptReadSize)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	buf = buf[:n]
	sector := 512
	if b, err := os.ReadFile(filepath.Join(s.SysBlock, disk, "queue", "logical_block_size")); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			sector = v
		}
	}
	return ParseGPT(buf, sector)
}

// partitionNames maps partition numbers to the kernel's device names
// ("vda1", "nvme0n1p1", "mmcblk0p1").
func (s Scanner) partitionNames(disk string) map[int]string {
	m := map[int]string{}
	ents, err := os.ReadDir(filepath.Join(s.SysBlock, disk))
	if err != nil {
		return m
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(s.SysBlock, disk, e.Name(), "partition"))
		if err != nil {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			m[n] = e.Name()
		}
	}
	return m
}

// ErrNotFound is returned when no partition matches before the deadline.
var ErrNotFound = errors.New("not found")

// Find returns the single partition matching sel. Two matches are an error:
// a duplicated PARTUUID is how an attacker-supplied disk would try to shadow
// the real root.
func Find(parts []BlockPartition, sel Selector) (BlockPartition, error) {
	var hits []BlockPartition
	for _, p := range parts {
		if sel.matches(p.Partition) {
			hits = append(hits, p)
		}
	}
	switch len(hits) {
	case 0:
		return BlockPartition{}, fmt.Errorf("partition %s: %w", sel, ErrNotFound)
	case 1:
		return hits[0], nil
	default:
		return BlockPartition{}, fmt.Errorf("partition %s: ambiguous: %s and %s", sel, hits[0].Dev, hits[1].Dev)
	}
}

// WaitFor rescans until every selector matches or ctx ends (the board's
// root_wait). It returns the matches in selector order.
func (s Scanner) WaitFor(ctx context.Context, sels ...Selector) ([]BlockPartition, error) {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		parts, err := s.Scan()
		if err == nil {
			found, ferr := findAll(parts, sels)
			if ferr == nil {
				return found, nil
			}
			if !errors.Is(ferr, ErrNotFound) {
				return nil, ferr
			}
			err = ferr
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w", describe(sels), err)
		case <-tick.C:
		}
	}
}

func findAll(parts []BlockPartition, sels []Selector) ([]BlockPartition, error) {
	out := make([]BlockPartition, 0, len(sels))
	for _, sel := range sels {
		p, err := Find(parts, sel)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func describe(sels []Selector) string {
	parts := make([]string, len(sels))
	for i, s := range sels {
		parts[i] = s.String()
	}
	return strings.Join(parts, ", ")
}
