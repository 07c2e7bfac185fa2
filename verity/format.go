package verity

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
)

// chunkBytes is about how much data one worker reads and hashes per job:
// large enough to amortise the hand-off, small enough to bound memory.
const chunkBytes = 2 << 20

// Format builds the hash tree of the first p.DataBlocks blocks of data
// (dataSize bytes) and writes it to hash at hashOffset: the superblock
// first (unless p.NoSuperblock), then the levels, top level first, at the
// hash block boundary that follows. It writes nothing else, like
// veritysetup. The data is read once, in parallel, in bounded chunks.
func Format(data io.ReaderAt, dataSize int64, hash io.WriterAt, hashOffset int64, p Params) (*Result, error) {
	p, err := p.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkBlockSize("data block size", p.DataBlockSize); err != nil {
		return nil, err
	}
	if dataSize < 0 {
		return nil, fmt.Errorf("data size %d is negative", dataSize)
	}
	if p.DataBlocks == 0 {
		if dataSize%int64(p.DataBlockSize) != 0 {
			return nil, fmt.Errorf("data size %d is not a multiple of the data block size %d (pad the image, or give the data block count)", dataSize, p.DataBlockSize)
		}
		p.DataBlocks = uint64(dataSize / int64(p.DataBlockSize))
		if p.DataBlocks == 0 {
			return nil, errors.New("data is empty")
		}
	}
	res, err := Layout(p, hashOffset)
	if err != nil {
		return nil, err
	}
	g, err := p.geometry()
	if err != nil {
		return nil, err
	}
	if need := int64(g.dataBlocks) * g.dbs; dataSize < need {
		return nil, fmt.Errorf("data size %d is smaller than %d blocks of %d bytes", dataSize, g.dataBlocks, g.dbs)
	}
	if !p.NoSuperblock {
		sb := &Superblock{
			Version: 1, HashType: 1, UUID: p.UUID, Algorithm: p.HashAlgorithm,
			DataBlockSize: p.DataBlockSize, HashBlockSize: p.HashBlockSize,
			DataBlocks: g.dataBlocks, Salt: p.Salt,
		}
		b, err := sb.MarshalBinary()
		if err != nil {
			return nil, err
		}
		if _, err := hash.WriteAt(b, hashOffset); err != nil {
			return nil, fmt.Errorf("writing superblock: %w", err)
		}
	}
	root, err := g.build(data, hash, int64(res.HashStartBlock)*g.hbs, p.Workers)
	if err != nil {
		return nil, err
	}
	res.RootHash = root
	return res, nil
}

const maxInt64 = 1<<63 - 1

// hasher hashes salt||block the version 1 way.
type hasher struct {
	h    hash.Hash
	salt []byte
}

func (g *geometry) hasher() *hasher { return &hasher{h: g.newHash(), salt: g.salt} }

func (h *hasher) sum(dst, block []byte) []byte {
	h.h.Reset()
	h.h.Write(h.salt)
	h.h.Write(block)
	return h.h.Sum(dst)
}

// chunking returns how many data blocks one job covers and how many jobs
// there are. Jobs are about chunkBytes, and never less than a block.
func (g *geometry) chunking() (perChunk uint64, chunks int) {
	perChunk = max(1, uint64(chunkBytes/g.dbs))
	perChunk = min(perChunk, g.dataBlocks)
	return perChunk, int((g.dataBlocks + perChunk - 1) / perChunk)
}

// readFull reads exactly len(b) bytes at off.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// build hashes the data and writes the tree at treeOff on out, returning
// the root hash. Workers hash the data blocks (nearly all the work); the
// calling goroutine assembles the levels in order.
func (g *geometry) build(data io.ReaderAt, out io.WriterAt, treeOff int64, workers int) ([]byte, error) {
	if g.levels == 0 {
		// A single data block: its own digest is the root hash.
		b := make([]byte, g.dbs)
		if err := readFull(data, b, 0); err != nil {
			return nil, fmt.Errorf("reading data block 0: %w", err)
		}
		return g.hasher().sum(nil, b), nil
	}
	perChunk, chunks := g.chunking()
	type wbuf struct {
		data []byte
		h    *hasher
	}
	bufs := make([]wbuf, workers)
	for i := range bufs {
		bufs[i] = wbuf{make([]byte, int64(perChunk)*g.dbs), g.hasher()}
	}
	work := func(w, c int) ([]byte, error) {
		b := &bufs[w]
		first := uint64(c) * perChunk
		n := min(perChunk, g.dataBlocks-first)
		d := b.data[:int64(n)*g.dbs]
		if err := readFull(data, d, int64(first)*g.dbs); err != nil {
			return nil, fmt.Errorf("reading data blocks %d-%d: %w", first, first+n-1, err)
		}
		digests := make([]byte, 0, int(n)*g.digestSize)
		for i := int64(0); i < int64(n); i++ {
			digests = b.h.sum(digests, d[i*g.dbs:(i+1)*g.dbs])
		}
		return digests, nil
	}
	up := newUpper(g, out, treeOff)
	consume := func(_ int, digests []byte) error {
		for i := 0; i < len(digests); i += g.digestSize {
			if err := up.push(0, digests[i:i+g.digestSize]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := ordered(chunks, workers, work, consume); err != nil {
		return nil, err
	}
	return up.finish()
}

// upper assembles the levels from the digests of the level below, in
// order, holding one partial block per level.
type upper struct {
	g       *geometry
	out     io.WriterAt
	treeOff int64
	h       *hasher
	cur     [][]byte // partial block per level
	fill    []int    // digests in cur
	written []uint64 // blocks written per level
	root    []byte
}

func newUpper(g *geometry, out io.WriterAt, treeOff int64) *upper {
	u := &upper{g: g, out: out, treeOff: treeOff, h: g.hasher(),
		cur: make([][]byte, g.levels), fill: make([]int, g.levels), written: make([]uint64, g.levels)}
	for l := range u.cur {
		u.cur[l] = make([]byte, g.hbs)
	}
	return u
}

func (u *upper) push(level int, digest []byte) error {
	if level == u.g.levels {
		if u.root != nil {
			return errors.New("internal error: more than one top-level block")
		}
		u.root = append([]byte{}, digest...)
		return nil
	}
	copy(u.cur[level][u.fill[level]*u.g.slot:], digest)
	u.fill[level]++
	if u.fill[level] == 1<<u.g.perBlockBits {
		return u.flush(level)
	}
	return nil
}

func (u *upper) flush(level int) error {
	g := u.g
	if u.written[level] >= g.levelSize[level] {
		return fmt.Errorf("internal error: level %d overflows its %d blocks", level, g.levelSize[level])
	}
	b := u.cur[level]
	off := u.treeOff + int64(g.levelStart[level]+u.written[level])*g.hbs
	if _, err := u.out.WriteAt(b, off); err != nil {
		return fmt.Errorf("writing hash block at offset %d: %w", off, err)
	}
	u.written[level]++
	d := u.h.sum(nil, b)
	clear(b)
	u.fill[level] = 0
	return u.push(level+1, d)
}

func (u *upper) finish() ([]byte, error) {
	for l := 0; l < u.g.levels; l++ {
		if u.fill[l] > 0 {
			if err := u.flush(l); err != nil {
				return nil, err
			}
		}
		if u.written[l] != u.g.levelSize[l] {
			return nil, fmt.Errorf("internal error: level %d has %d blocks, want %d", l, u.written[l], u.g.levelSize[l])
		}
	}
	if u.root == nil {
		return nil, errors.New("internal error: no root hash")
	}
	return u.root, nil
}

// FormatFiles is Format on files: the hash file is created if missing
// (mode 0600) and grown to the end of the tree, never truncated. The data
// and hash may be the same file when the hash offset lies past the data.
func FormatFiles(dataPath, hashPath string, hashOffset int64, p Params) (*Result, error) {
	df, err := os.Open(dataPath)
	if err != nil {
		return nil, err
	}
	defer df.Close()
	dsize, err := DeviceSize(df)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dataPath, err)
	}
	hf, err := os.OpenFile(hashPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer hf.Close()
	if same, err := sameFile(df, hf); err != nil {
		return nil, err
	} else if same {
		blocks := p.DataBlocks
		bs := int64(p.DataBlockSize)
		if bs == 0 {
			bs = DefaultBlockSize
		}
		if blocks == 0 {
			// The data stops where the hash area begins.
			dsize = min(dsize, hashOffset)
			blocks = uint64(dsize / bs)
		}
		if hashOffset < int64(blocks)*bs {
			return nil, fmt.Errorf("hash offset %d overlaps the data area (%d blocks of %d bytes)", hashOffset, blocks, bs)
		}
	}
	res, err := Format(df, dsize, hf, hashOffset, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dataPath, err)
	}
	hsize, err := DeviceSize(hf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", hashPath, err)
	}
	if hsize < res.HashEnd {
		st, err := hf.Stat()
		if err == nil && st.Mode().IsRegular() {
			err = hf.Truncate(res.HashEnd)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", hashPath, err)
		}
	}
	if err := hf.Sync(); err != nil {
		return nil, fmt.Errorf("%s: %w", hashPath, err)
	}
	return res, hf.Close()
}

// DeviceSize returns the size of a regular file or block device (Stat
// reports 0 for a block device, so it seeks to the end instead).
func DeviceSize(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Mode().IsRegular() {
		return st.Size(), nil
	}
	return f.Seek(0, io.SeekEnd)
}

func sameFile(a, b *os.File) (bool, error) {
	sa, err := a.Stat()
	if err != nil {
		return false, err
	}
	sb, err := b.Stat()
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
