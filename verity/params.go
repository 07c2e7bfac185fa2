// Package verity builds and checks dm-verity hash trees exactly as
// `veritysetup format` lays them out (format version 1: the salt is hashed
// before each block, every digest occupies a power-of-two slot, the levels
// are stored top level first), with or without the 512-byte veritysetup
// superblock. Hashing runs on all cores and streams: memory stays constant
// whatever the image size.
package verity

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"math"
	"math/bits"
	"runtime"
)

// Defaults, the same as veritysetup's.
const (
	DefaultHashAlgorithm = "sha256"
	DefaultBlockSize     = 4096
	DefaultSaltSize      = 32
	MinBlockSize         = 512
	MaxBlockSize         = 512 << 10
)

// Params describes a hash tree. The zero value means veritysetup's
// defaults: sha256, 4096-byte blocks, a random 32-byte salt, a superblock
// with a random UUID.
type Params struct {
	HashAlgorithm string // "sha256" (default), "sha512" or "sha1"
	DataBlockSize uint32 // power of two in [512, 512 KiB]; 0 means 4096
	HashBlockSize uint32 // power of two in [512, 512 KiB]; 0 means 4096
	// DataBlocks is the number of data blocks covered; 0 means the data
	// size divided by DataBlockSize, which must then divide it exactly.
	DataBlocks uint64
	// Salt: nil means DefaultSaltSize random bytes; a non-nil empty slice
	// means no salt (veritysetup's --salt=-).
	Salt         []byte
	UUID         [16]byte // superblock UUID; zero means a random version 4 UUID
	NoSuperblock bool     // veritysetup --no-superblock
	Workers      int      // hashing goroutines; 0 means GOMAXPROCS
}

// Result is what Format built.
type Result struct {
	RootHash       []byte
	Salt           []byte
	UUID           [16]byte // zero with NoSuperblock
	HashAlgorithm  string
	DataBlockSize  uint32
	HashBlockSize  uint32
	DataBlocks     uint64
	HashBlocks     uint64 // blocks of the tree itself, superblock not counted
	HashStartBlock uint64 // first tree block on the hash device, in hash blocks (the kernel's hash_start_block)
	HashEnd        int64  // byte offset on the hash device just past the tree
}

// hashFunc returns the constructor and digest size for a veritysetup
// algorithm name.
func hashFunc(name string) (func() hash.Hash, int, error) {
	switch name {
	case "sha256":
		return sha256.New, sha256.Size, nil
	case "sha512":
		return sha512.New, sha512.Size, nil
	case "sha1":
		return sha1.New, sha1.Size, nil
	}
	return nil, 0, fmt.Errorf("hash algorithm %.40q not supported (sha256, sha512, sha1)", name)
}

// DigestSize returns the digest size of a supported algorithm, 0 otherwise.
func DigestSize(algorithm string) int {
	_, n, err := hashFunc(algorithm)
	if err != nil {
		return 0
	}
	return n
}

// geometry is the resolved shape of a tree.
type geometry struct {
	newHash      func() hash.Hash
	digestSize   int
	salt         []byte
	dbs, hbs     int64
	perBlockBits uint
	slot         int // bytes per digest slot in a hash block
	dataBlocks   uint64
	levels       int
	levelStart   []uint64 // first block of each level, relative to the tree start
	levelSize    []uint64 // blocks in each level
	hashBlocks   uint64
}

func checkBlockSize(field string, bs uint32) error {
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return fmt.Errorf("%s %d: must be a power of two from %d to %d", field, bs, MinBlockSize, MaxBlockSize)
	}
	return nil
}

// geometry validates p (defaults already applied) and lays out the tree.
func (p Params) geometry() (*geometry, error) {
	nh, ds, err := hashFunc(p.HashAlgorithm)
	if err != nil {
		return nil, err
	}
	if err := checkBlockSize("data block size", p.DataBlockSize); err != nil {
		return nil, err
	}
	if err := checkBlockSize("hash block size", p.HashBlockSize); err != nil {
		return nil, err
	}
	if len(p.Salt) > MaxSaltSize {
		return nil, fmt.Errorf("salt of %d bytes exceeds %d", len(p.Salt), MaxSaltSize)
	}
	if p.DataBlocks == 0 {
		return nil, fmt.Errorf("data blocks: 0, the data must hold at least one block")
	}
	if p.DataBlocks > math.MaxInt64/uint64(p.DataBlockSize) {
		return nil, fmt.Errorf("data blocks %d of %d bytes overflow a 64-bit size", p.DataBlocks, p.DataBlockSize)
	}
	g := &geometry{
		newHash:    nh,
		digestSize: ds,
		salt:       p.Salt,
		dbs:        int64(p.DataBlockSize),
		hbs:        int64(p.HashBlockSize),
		dataBlocks: p.DataBlocks,
	}
	// The kernel rounds the number of digests per block down to a power
	// of two; version 1 gives each digest a slot of hbs >> bits bytes.
	g.perBlockBits = uint(bits.Len(uint(p.HashBlockSize)/uint(ds)) - 1)
	g.slot = int(g.hbs >> g.perBlockBits)
	for uint(g.levels)*g.perBlockBits < 64 && (g.dataBlocks-1)>>(uint(g.levels)*g.perBlockBits) != 0 {
		g.levels++
	}
	g.levelStart = make([]uint64, g.levels)
	g.levelSize = make([]uint64, g.levels)
	var pos uint64
	for i := g.levels - 1; i >= 0; i-- {
		shift := uint(i+1) * g.perBlockBits
		var s uint64 = 1
		if shift < 64 {
			s = (g.dataBlocks + (1 << shift) - 1) >> shift
		}
		g.levelStart[i] = pos
		g.levelSize[i] = s
		pos += s
	}
	g.hashBlocks = pos
	return g, nil
}

// withTreeDefaults fills in veritysetup's hash algorithm and block sizes,
// the defaults that formatting and verifying share.
func (p Params) withTreeDefaults() Params {
	if p.HashAlgorithm == "" {
		p.HashAlgorithm = DefaultHashAlgorithm
	}
	if p.DataBlockSize == 0 {
		p.DataBlockSize = DefaultBlockSize
	}
	if p.HashBlockSize == 0 {
		p.HashBlockSize = DefaultBlockSize
	}
	return p
}

// withDefaults fills in veritysetup's defaults; it draws the random salt and
// UUID when asked for.
func (p Params) withDefaults() (Params, error) {
	p = p.withTreeDefaults()
	if p.Salt == nil {
		p.Salt = make([]byte, DefaultSaltSize)
		if _, err := rand.Read(p.Salt); err != nil {
			return p, fmt.Errorf("random salt: %w", err)
		}
	}
	if p.NoSuperblock {
		p.UUID = [16]byte{}
	} else if p.UUID == ([16]byte{}) {
		if _, err := rand.Read(p.UUID[:]); err != nil {
			return p, fmt.Errorf("random uuid: %w", err)
		}
		p.UUID[6] = p.UUID[6]&0x0f | 0x40
		p.UUID[8] = p.UUID[8]&0x3f | 0x80
	}
	if p.Workers <= 0 {
		p.Workers = runtime.GOMAXPROCS(0)
	}
	return p, nil
}

// treeStart returns the first tree block on the hash device, in hash
// blocks, for a tree (and superblock) placed at hashOffset.
func treeStart(hashOffset int64, hbs int64, noSuperblock bool) (uint64, error) {
	if hashOffset < 0 {
		return 0, fmt.Errorf("hash offset %d is negative", hashOffset)
	}
	if noSuperblock {
		if hashOffset%hbs != 0 {
			return 0, fmt.Errorf("hash offset %d: without a superblock it must be a multiple of the hash block size %d", hashOffset, hbs)
		}
		return uint64(hashOffset / hbs), nil
	}
	if hashOffset%SuperblockSize != 0 {
		return 0, fmt.Errorf("hash offset %d: must be a multiple of %d", hashOffset, SuperblockSize)
	}
	if hashOffset > math.MaxInt64-SuperblockSize-hbs {
		return 0, fmt.Errorf("hash offset %d too large", hashOffset)
	}
	// The tree starts at the first hash block after the superblock.
	return uint64((hashOffset + SuperblockSize + hbs - 1) / hbs), nil
}

// FormatUUID renders a UUID in the usual 8-4-4-4-12 lowercase form.
func FormatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// ParseUUID parses the 8-4-4-4-12 hex form (either case).
func ParseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("uuid %.40q: want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	j := 0
	for i := 0; i < 36; {
		if s[i] == '-' {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return u, fmt.Errorf("uuid %.40q: not hexadecimal", s)
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	return u, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
