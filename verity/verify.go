package verity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// CorruptionError names the first block that failed verification.
type CorruptionError struct {
	Area  string // "data" or "hash"
	Block uint64 // data block number, or block number on the hash device (in hash blocks)
	Level int    // tree level of a bad hash block (0 is the lowest); -1 for data
	Top   bool   // the block is checked against the root hash itself
}

func (e *CorruptionError) Error() string {
	s := fmt.Sprintf("%s block %d is corrupted", e.Area, e.Block)
	if e.Area == "hash" {
		s = fmt.Sprintf("hash block %d (tree level %d) is corrupted", e.Block, e.Level)
	}
	if e.Top {
		s += " or the root hash is wrong"
	}
	return s
}

// Layout returns the geometry of a tree with complete parameters p (as
// read from a superblock, say) placed at hashOffset. RootHash is left nil.
func Layout(p Params, hashOffset int64) (*Result, error) {
	g, err := p.geometry()
	if err != nil {
		return nil, err
	}
	start, err := treeStart(hashOffset, g.hbs, p.NoSuperblock)
	if err != nil {
		return nil, err
	}
	if start+g.hashBlocks > uint64(maxInt64/g.hbs) {
		return nil, errors.New("hash tree end overflows a 64-bit offset")
	}
	return &Result{
		Salt: p.Salt, UUID: p.UUID, HashAlgorithm: p.HashAlgorithm,
		DataBlockSize: p.DataBlockSize, HashBlockSize: p.HashBlockSize,
		DataBlocks: g.dataBlocks, HashBlocks: g.hashBlocks, HashStartBlock: start,
		HashEnd: int64(start+g.hashBlocks) * g.hbs,
	}, nil
}

// ReadSuperblock reads and parses the superblock at off.
func ReadSuperblock(r io.ReaderAt, off int64) (*Superblock, error) {
	b := make([]byte, SuperblockSize)
	if err := readFull(r, b, off); err != nil {
		return nil, fmt.Errorf("reading verity superblock at offset %d: %w", off, err)
	}
	return ParseSuperblock(b)
}

// resolveVerify completes p for verification: with a superblock the tree
// parameters come from it, and any that p sets must agree.
func resolveVerify(dataSize int64, hash io.ReaderAt, hashOffset int64, p Params) (Params, error) {
	if !p.NoSuperblock {
		sb, err := ReadSuperblock(hash, hashOffset)
		if err != nil {
			return p, err
		}
		q := sb.Params()
		q.Workers = p.Workers
		switch {
		case p.HashAlgorithm != "" && p.HashAlgorithm != q.HashAlgorithm:
			return p, fmt.Errorf("hash algorithm %s differs from the superblock's %s", p.HashAlgorithm, q.HashAlgorithm)
		case p.DataBlockSize != 0 && p.DataBlockSize != q.DataBlockSize:
			return p, fmt.Errorf("data block size %d differs from the superblock's %d", p.DataBlockSize, q.DataBlockSize)
		case p.HashBlockSize != 0 && p.HashBlockSize != q.HashBlockSize:
			return p, fmt.Errorf("hash block size %d differs from the superblock's %d", p.HashBlockSize, q.HashBlockSize)
		case p.DataBlocks != 0 && p.DataBlocks != q.DataBlocks:
			return p, fmt.Errorf("data blocks %d differ from the superblock's %d", p.DataBlocks, q.DataBlocks)
		case p.Salt != nil && !bytes.Equal(p.Salt, q.Salt):
			return p, fmt.Errorf("salt %x differs from the superblock's %x", p.Salt, q.Salt)
		}
		p = q
	} else {
		p = p.withTreeDefaults()
		if p.Salt == nil {
			p.Salt = []byte{}
		}
		if p.DataBlocks == 0 {
			if err := checkBlockSize("data block size", p.DataBlockSize); err != nil {
				return p, err
			}
			if dataSize%int64(p.DataBlockSize) != 0 {
				return p, fmt.Errorf("data size %d is not a multiple of the data block size %d", dataSize, p.DataBlockSize)
			}
			p.DataBlocks = uint64(dataSize / int64(p.DataBlockSize))
		}
	}
	if p.Workers <= 0 {
		p.Workers = runtime.GOMAXPROCS(0)
	}
	return p, nil
}

// Verify checks data (dataSize bytes) against the tree on hash at
// hashOffset and the trusted root hash. With a superblock the parameters
// come from it (fields set in p must agree); with p.NoSuperblock they come
// from p (a nil salt means none). The tree is checked top-down first, then
// the data in parallel; a *CorruptionError names the first bad block.
func Verify(data io.ReaderAt, dataSize int64, hash io.ReaderAt, hashOffset int64, root []byte, p Params) error {
	p, err := resolveVerify(dataSize, hash, hashOffset, p)
	if err != nil {
		return err
	}
	g, err := p.geometry()
	if err != nil {
		return err
	}
	if need := int64(g.dataBlocks) * g.dbs; dataSize < need {
		return fmt.Errorf("data size %d is smaller than %d blocks of %d bytes", dataSize, g.dataBlocks, g.dbs)
	}
	start, err := treeStart(hashOffset, g.hbs, p.NoSuperblock)
	if err != nil {
		return err
	}
	if len(root) != g.digestSize {
		return fmt.Errorf("root hash is %d bytes, %s needs %d", len(root), p.HashAlgorithm, g.digestSize)
	}
	if err := g.verifyTree(data, hash, start, root); err != nil {
		return err
	}
	if g.levels == 0 {
		return nil
	}
	return g.verifyData(data, hash, start, p.Workers)
}

// CheckRoot checks only the top of the tree against root: the top hash
// block, or the only data block of a one-block image. It is a cheap test
// that root hash and tree belong together, before trusting the kernel
// with them; p must be complete (e.g. a superblock's Params).
func CheckRoot(data, hash io.ReaderAt, hashOffset int64, root []byte, p Params) error {
	g, err := p.geometry()
	if err != nil {
		return err
	}
	start, err := treeStart(hashOffset, g.hbs, p.NoSuperblock)
	if err != nil {
		return err
	}
	if len(root) != g.digestSize {
		return fmt.Errorf("root hash is %d bytes, %s needs %d", len(root), p.HashAlgorithm, g.digestSize)
	}
	return g.checkTop(data, hash, start, root)
}

func (g *geometry) checkTop(data, hash io.ReaderAt, start uint64, root []byte) error {
	h := g.hasher()
	if g.levels == 0 {
		b := make([]byte, g.dbs)
		if err := readFull(data, b, 0); err != nil {
			return fmt.Errorf("reading data block 0: %w", err)
		}
		if !bytes.Equal(h.sum(nil, b), root) {
			return &CorruptionError{Area: "data", Block: 0, Level: -1, Top: true}
		}
		return nil
	}
	top := g.levels - 1
	b := make([]byte, g.hbs)
	abs := start + g.levelStart[top]
	if err := readFull(hash, b, int64(abs)*g.hbs); err != nil {
		return fmt.Errorf("reading hash block %d: %w", abs, err)
	}
	if !bytes.Equal(h.sum(nil, b), root) {
		return &CorruptionError{Area: "hash", Block: abs, Level: top, Top: true}
	}
	return nil
}

// verifyTree checks every hash block against its parent's entry, from the
// top level down, so a bad block is named at the highest level it shows.
func (g *geometry) verifyTree(data, hash io.ReaderAt, start uint64, root []byte) error {
	if err := g.checkTop(data, hash, start, root); err != nil || g.levels == 0 {
		return err
	}
	h := g.hasher()
	blk := make([]byte, g.hbs)
	parent := make([]byte, g.hbs)
	var sum []byte
	for l := g.levels - 2; l >= 0; l-- {
		parentIdx := ^uint64(0)
		for j := uint64(0); j < g.levelSize[l]; j++ {
			abs := start + g.levelStart[l] + j
			if err := readFull(hash, blk, int64(abs)*g.hbs); err != nil {
				return fmt.Errorf("reading hash block %d: %w", abs, err)
			}
			if pj := j >> g.perBlockBits; pj != parentIdx {
				pabs := start + g.levelStart[l+1] + pj
				if err := readFull(hash, parent, int64(pabs)*g.hbs); err != nil {
					return fmt.Errorf("reading hash block %d: %w", pabs, err)
				}
				parentIdx = pj
			}
			slot := int(j&(1<<g.perBlockBits-1)) * g.slot
			sum = h.sum(sum[:0], blk)
			if !bytes.Equal(sum, parent[slot:slot+g.digestSize]) {
				return &CorruptionError{Area: "hash", Block: abs, Level: l}
			}
		}
	}
	return nil
}

// verifyData checks the data blocks against level 0 (already verified).
func (g *geometry) verifyData(data, hash io.ReaderAt, start uint64, workers int) error {
	perChunk, chunks := g.chunking()
	// The level-0 blocks one chunk's digests can straddle.
	maxHashBlocks := int64(perChunk>>g.perBlockBits) + 2
	type wbuf struct {
		data, tree, sum []byte
		h               *hasher
	}
	bufs := make([]wbuf, workers)
	for i := range bufs {
		bufs[i] = wbuf{data: make([]byte, int64(perChunk)*g.dbs), tree: make([]byte, maxHashBlocks*g.hbs), h: g.hasher()}
	}
	work := func(w, c int) (int64, error) {
		b := &bufs[w]
		first := uint64(c) * perChunk
		n := min(perChunk, g.dataBlocks-first)
		d := b.data[:int64(n)*g.dbs]
		if err := readFull(data, d, int64(first)*g.dbs); err != nil {
			return 0, fmt.Errorf("reading data blocks %d-%d: %w", first, first+n-1, err)
		}
		h0, h1 := first>>g.perBlockBits, (first+n-1)>>g.perBlockBits
		t := b.tree[:int64(h1-h0+1)*g.hbs]
		abs := start + g.levelStart[0] + h0
		if err := readFull(hash, t, int64(abs)*g.hbs); err != nil {
			return 0, fmt.Errorf("reading hash blocks %d-%d: %w", abs, abs+h1-h0, err)
		}
		// Entry i of the chunk sits this many slots into t.
		skew := int64(first - h0<<g.perBlockBits)
		for i := int64(0); i < int64(n); i++ {
			b.sum = b.h.sum(b.sum[:0], d[i*g.dbs:(i+1)*g.dbs])
			at := (skew + i) * int64(g.slot)
			if !bytes.Equal(b.sum, t[at:at+int64(g.digestSize)]) {
				return int64(first) + i, nil
			}
		}
		return -1, nil
	}
	consume := func(_ int, bad int64) error {
		if bad >= 0 {
			return &CorruptionError{Area: "data", Block: uint64(bad), Level: -1}
		}
		return nil
	}
	return ordered(chunks, workers, work, consume)
}

// VerifyFiles is Verify on files.
func VerifyFiles(dataPath, hashPath string, hashOffset int64, root []byte, p Params) error {
	df, err := os.Open(dataPath)
	if err != nil {
		return err
	}
	defer df.Close()
	dsize, err := DeviceSize(df)
	if err != nil {
		return fmt.Errorf("%s: %w", dataPath, err)
	}
	hf, err := os.Open(hashPath)
	if err != nil {
		return err
	}
	defer hf.Close()
	if p.NoSuperblock && p.DataBlocks == 0 {
		if same, err := sameFile(df, hf); err == nil && same {
			dsize = min(dsize, hashOffset)
		}
	}
	return Verify(df, dsize, hf, hashOffset, root, p)
}
