// Package mkfs writes empty filesystems from Go, for an initramfs that
// carries no mkfs binary: /init formats a development upper partition on
// first use with it.
//
// Ext2 writes a minimal ext2 revision 1 filesystem (ext_attr,
// sparse_super, large_file, filetype; 128-byte inodes; no journal, no resize inode):
// a root directory and lost+found. Linux's ext4 driver mounts it
// read-write, e2fsck accepts it as clean.
package mkfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Ext2Options describe the filesystem to write. The zero value is valid.
type Ext2Options struct {
	Label string   // volume name, at most 16 bytes
	UUID  [16]byte // filesystem UUID
	// BlockSize is 1024, 2048 or 4096 (default 4096).
	BlockSize int
	// BytesPerInode sets the inode count (default 16384).
	BytesPerInode int
	// Time stamps the superblock and the two directories (default: the
	// Unix epoch, for reproducible images).
	Time time.Time
}

const (
	inodeSize     = 128
	descSize      = 32
	firstIno      = 11 // inodes 1-10 are reserved
	rootIno       = 2
	lostFoundIno  = 11
	superOffset   = 1024
	superSize     = 1024
	ext2Magic     = 0xef53
	compatXattr   = 0x0008 // ext_attr: overlayfs keeps whiteouts in xattrs
	incompatType  = 0x0002 // filetype in directory entries
	roSparseSuper = 0x0001
	roLargeFile   = 0x0002
	maxBlocks     = 1<<32 - 1
)

// MinSize is the smallest filesystem Ext2 writes.
const MinSize = 1 << 20

// geometry is the layout of the filesystem.
type geometry struct {
	bs, blocks, firstData, bpg, groups uint64
	ipg, itBlocks, gdtBlocks           uint64
}

func layout(size int64, opt Ext2Options) (geometry, error) {
	var g geometry
	bs := opt.BlockSize
	if bs == 0 {
		bs = 4096
	}
	if bs != 1024 && bs != 2048 && bs != 4096 {
		return g, fmt.Errorf("mkfs: block size %d is not 1024, 2048 or 4096", bs)
	}
	bpi := opt.BytesPerInode
	if bpi == 0 {
		bpi = 16384
	}
	if bpi < bs || bpi > 1<<26 {
		return g, fmt.Errorf("mkfs: bytes per inode %d out of range [%d, 64M]", bpi, bs)
	}
	if size < MinSize {
		return g, fmt.Errorf("mkfs: %d bytes is too small (at least %d)", size, MinSize)
	}
	if len(opt.Label) > 16 {
		return g, fmt.Errorf("mkfs: label %q is longer than 16 bytes", opt.Label)
	}
	g.bs = uint64(bs)
	g.blocks = uint64(size) / g.bs
	if g.blocks > maxBlocks {
		g.blocks = maxBlocks
	}
	if bs == 1024 {
		g.firstData = 1 // block 0 holds the boot sector only
	}
	g.bpg = 8 * g.bs
	for {
		g.groups = (g.blocks - g.firstData + g.bpg - 1) / g.bpg
		inodes := uint64(size) / uint64(bpi)
		g.ipg = (inodes + g.groups - 1) / g.groups
		perBlock := g.bs / inodeSize
		// Whole inode-table blocks, a multiple of 8 inodes, and at most
		// one bitmap block of them.
		g.ipg = (g.ipg + perBlock - 1) / perBlock * perBlock
		if g.ipg < 16 {
			g.ipg = 16
		}
		if g.ipg > 8*g.bs {
			g.ipg = 8 * g.bs
		}
		g.itBlocks = g.ipg * inodeSize / g.bs
		g.gdtBlocks = (g.groups*descSize + g.bs - 1) / g.bs
		// The last group must hold its own metadata and some data, else
		// drop it (as mke2fs does).
		last := g.blocks - g.firstData - (g.groups-1)*g.bpg
		if g.groups == 1 || last >= g.overhead(g.groups-1)+64 {
			break
		}
		g.blocks = g.firstData + (g.groups-1)*g.bpg
	}
	if g.overhead(0)+2+16 > g.blocks-g.firstData {
		return g, fmt.Errorf("mkfs: %d bytes is too small for the metadata", size)
	}
	if g.groups*g.ipg > maxBlocks {
		return g, errors.New("mkfs: too many inodes")
	}
	return g, nil
}

// hasSuper reports whether group n keeps a superblock copy
// (sparse_super: groups 0, 1 and powers of 3, 5 and 7).
func hasSuper(n uint64) bool {
	if n <= 1 {
		return true
	}
	for _, b := range []uint64{3, 5, 7} {
		p := b
		for p < n {
			p *= b
		}
		if p == n {
			return true
		}
	}
	return false
}

// overhead is the number of metadata blocks at the start of group n.
func (g geometry) overhead(n uint64) uint64 {
	o := 2 + g.itBlocks // bitmaps and inode table
	if hasSuper(n) {
		o += 1 + g.gdtBlocks
	}
	return o
}

func (g geometry) groupStart(n uint64) uint64 { return g.firstData + n*g.bpg }

func (g geometry) groupBlocks(n uint64) uint64 {
	if n == g.groups-1 {
		return g.blocks - g.groupStart(n)
	}
	return g.bpg
}

// Ext2 writes an empty ext2 filesystem of size bytes to w (a partition or
// an image file of at least that size). It writes every metadata block,
// including zeroed inode tables, and none of the data blocks.
func Ext2(w io.WriterAt, size int64, opt Ext2Options) error {
	g, err := layout(size, opt)
	if err != nil {
		return err
	}
	ts := uint32(0)
	if !opt.Time.IsZero() && opt.Time.Unix() > 0 && opt.Time.Unix() < 1<<32 {
		ts = uint32(opt.Time.Unix())
	}
	le := binary.LittleEndian
	bs := g.bs

	// Group 0 holds the two directories' blocks, right after its metadata.
	rootBlk := g.groupStart(0) + g.overhead(0)
	lfBlk := rootBlk + 1

	totalFreeBlocks, totalFreeInodes := uint64(0), uint64(0)
	gdt := make([]byte, g.gdtBlocks*bs)
	type groupMeta struct{ bbitmap, ibitmap, itable uint64 }
	metas := make([]groupMeta, g.groups)
	for n := uint64(0); n < g.groups; n++ {
		start := g.groupStart(n)
		m := groupMeta{bbitmap: start}
		if hasSuper(n) {
			m.bbitmap += 1 + g.gdtBlocks
		}
		m.ibitmap = m.bbitmap + 1
		m.itable = m.ibitmap + 1
		metas[n] = m
		used := g.overhead(n)
		usedInodes, dirs := uint64(0), uint64(0)
		if n == 0 {
			used += 2
			usedInodes, dirs = firstIno, 2
		}
		freeB := g.groupBlocks(n) - used
		freeI := g.ipg - usedInodes
		totalFreeBlocks += freeB
		totalFreeInodes += freeI
		d := gdt[n*descSize:]
		le.PutUint32(d[0:], uint32(m.bbitmap))
		le.PutUint32(d[4:], uint32(m.ibitmap))
		le.PutUint32(d[8:], uint32(m.itable))
		le.PutUint16(d[12:], uint16(freeB))
		le.PutUint16(d[14:], uint16(freeI))
		le.PutUint16(d[16:], uint16(dirs))
	}

	sb := make([]byte, superSize)
	le.PutUint32(sb[0:], uint32(g.groups*g.ipg))
	le.PutUint32(sb[4:], uint32(g.blocks))
	le.PutUint32(sb[12:], uint32(totalFreeBlocks))
	le.PutUint32(sb[16:], uint32(totalFreeInodes))
	le.PutUint32(sb[20:], uint32(g.firstData))
	logBS := uint32(0)
	for 1024<<logBS < bs {
		logBS++
	}
	le.PutUint32(sb[24:], logBS)
	le.PutUint32(sb[28:], logBS)
	le.PutUint32(sb[32:], uint32(g.bpg))
	le.PutUint32(sb[36:], uint32(g.bpg))
	le.PutUint32(sb[40:], uint32(g.ipg))
	le.PutUint32(sb[48:], ts)     // s_wtime
	le.PutUint16(sb[54:], 0xffff) // s_max_mnt_count: -1, no forced checks
	le.PutUint16(sb[56:], ext2Magic)
	le.PutUint16(sb[58:], 1) // s_state: clean
	le.PutUint16(sb[60:], 1) // s_errors: continue
	le.PutUint32(sb[64:], ts)
	le.PutUint32(sb[76:], 1) // s_rev_level: dynamic
	le.PutUint32(sb[84:], firstIno)
	le.PutUint16(sb[88:], inodeSize)
	le.PutUint32(sb[92:], compatXattr)
	le.PutUint32(sb[96:], incompatType)
	le.PutUint32(sb[100:], roSparseSuper|roLargeFile)
	copy(sb[104:120], opt.UUID[:])
	copy(sb[120:136], opt.Label)
	for i := 0; i < 4; i++ { // s_hash_seed, for directory hashing if enabled later
		copy(sb[236+4*i:], opt.UUID[4*i:4*i+4])
	}
	sb[252] = 1                // s_def_hash_version: half_md4
	le.PutUint32(sb[268:], ts) // s_mkfs_time

	for n := uint64(0); n < g.groups; n++ {
		start := g.groupStart(n)
		if hasSuper(n) {
			// Group 0's superblock sits at byte 1024 whatever the block
			// size; the backups start their group's first block.
			blk := make([]byte, bs)
			copy(blk, sb)
			le.PutUint16(blk[90:], uint16(n)) // s_block_group_nr
			pos := int64(start * bs)
			if n == 0 {
				blk, pos = blk[:superSize], superOffset
			}
			if err := writeAt(w, blk, pos); err != nil {
				return err
			}
			if err := writeAt(w, gdt, int64((start+1)*bs)); err != nil {
				return err
			}
		}
		m := metas[n]
		// Block bitmap: the metadata (and group 0's directories) used,
		// the bits past the group's last block set as padding.
		bb := make([]byte, bs)
		used := g.overhead(n)
		if n == 0 {
			used += 2
		}
		setBits(bb, 0, used)
		setBits(bb, g.groupBlocks(n), 8*bs)
		if err := writeAt(w, bb, int64(m.bbitmap*bs)); err != nil {
			return err
		}
		ib := make([]byte, bs)
		if n == 0 {
			setBits(ib, 0, firstIno)
		}
		setBits(ib, g.ipg, 8*bs)
		if err := writeAt(w, ib, int64(m.ibitmap*bs)); err != nil {
			return err
		}
		it := make([]byte, g.itBlocks*bs)
		if n == 0 {
			putDirInode(it[(rootIno-1)*inodeSize:], 0o755, 3, rootBlk, bs, ts)
			putDirInode(it[(lostFoundIno-1)*inodeSize:], 0o700, 2, lfBlk, bs, ts)
		}
		if err := writeAt(w, it, int64(m.itable*bs)); err != nil {
			return err
		}
	}

	root := make([]byte, bs)
	o := putDirent(root, 0, rootIno, 12, ".")
	o = putDirent(root, o, rootIno, 12, "..")
	putDirent(root, o, lostFoundIno, bs-o, "lost+found")
	if err := writeAt(w, root, int64(rootBlk*bs)); err != nil {
		return err
	}
	lf := make([]byte, bs)
	o = putDirent(lf, 0, lostFoundIno, 12, ".")
	putDirent(lf, o, rootIno, bs-o, "..")
	return writeAt(w, lf, int64(lfBlk*bs))
}

func putDirInode(b []byte, perm uint16, links uint16, blk, bs uint64, ts uint32) {
	le := binary.LittleEndian
	le.PutUint16(b[0:], 0o040000|perm)
	le.PutUint32(b[4:], uint32(bs))
	le.PutUint32(b[8:], ts)
	le.PutUint32(b[12:], ts)
	le.PutUint32(b[16:], ts)
	le.PutUint16(b[26:], links)
	le.PutUint32(b[28:], uint32(bs/512))
	le.PutUint32(b[40:], uint32(blk))
}

// putDirent writes a directory entry at off and returns the next offset.
func putDirent(b []byte, off uint64, ino uint32, recLen uint64, name string) uint64 {
	le := binary.LittleEndian
	le.PutUint32(b[off:], ino)
	le.PutUint16(b[off+4:], uint16(recLen))
	b[off+6] = byte(len(name))
	b[off+7] = 2 // EXT2_FT_DIR
	copy(b[off+8:], name)
	return off + recLen
}

// setBits sets bits [from, to) of a little-endian bitmap.
func setBits(b []byte, from, to uint64) {
	for i := from; i < to; i++ {
		b[i/8] |= 1 << (i % 8)
	}
}

func writeAt(w io.WriterAt, b []byte, off int64) error {
	if _, err := w.WriteAt(b, off); err != nil {
		return fmt.Errorf("mkfs: writing %d bytes at %d: %w", len(b), off, err)
	}
	return nil
}

// Blank reports whether the first n bytes of r are all zero: the only
// state in which a partition may be formatted without asking. A short read
// (a device smaller than n) counts what was read.
func Blank(r io.ReaderAt, n int64) (bool, error) {
	buf := make([]byte, 64<<10)
	zero := make([]byte, len(buf))
	for off := int64(0); off < n; off += int64(len(buf)) {
		k := int64(len(buf))
		if n-off < k {
			k = n - off
		}
		got, err := r.ReadAt(buf[:k], off)
		if !bytes.Equal(buf[:got], zero[:got]) {
			return false, nil
		}
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("mkfs: reading at %d: %w", off, err)
		}
	}
	return true, nil
}
