package verity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// SuperblockSize is the size of the veritysetup superblock on disk.
const SuperblockSize = 512

// MaxSaltSize is the largest salt the superblock can hold.
const MaxSaltSize = 256

// superblock layout (little-endian), as written by veritysetup:
//
//	0   signature "verity\0\0"
//	8   version u32 (1)
//	12  hash_type u32 (1 = normal, 0 = Chrome OS)
//	16  uuid [16]
//	32  algorithm [32], NUL-terminated
//	64  data_block_size u32
//	68  hash_block_size u32
//	72  data_blocks u64
//	80  salt_size u16
//	82  pad [6]
//	88  salt [256]
//	344 pad [168]
const (
	sbSignature   = "verity\x00\x00"
	offVersion    = 8
	offHashType   = 12
	offUUID       = 16
	offAlgorithm  = 32
	lenAlgorithm  = 32
	offDataBS     = 64
	offHashBS     = 68
	offDataBlocks = 72
	offSaltSize   = 80
	offSalt       = 88
)

// Superblock is the on-disk header veritysetup writes at the hash offset.
// The kernel never reads it: it only tells userspace how the tree was built.
type Superblock struct {
	Version       uint32 // always 1
	HashType      uint32 // always 1 (salt before the block)
	UUID          [16]byte
	Algorithm     string // "sha256", "sha512" or "sha1"
	DataBlockSize uint32
	HashBlockSize uint32
	DataBlocks    uint64
	Salt          []byte // at most MaxSaltSize bytes
}

// ParseSuperblock decodes and strictly checks the superblock at the start
// of b. Padding must be zero, the algorithm must be one this package
// supports, and the geometry must be one the kernel can map; every error
// names the offending field.
func ParseSuperblock(b []byte) (*Superblock, error) {
	if len(b) < SuperblockSize {
		return nil, fmt.Errorf("verity superblock: %d bytes, need %d", len(b), SuperblockSize)
	}
	b = b[:SuperblockSize]
	if string(b[:8]) != sbSignature {
		return nil, errors.New("verity superblock: bad signature (not a veritysetup hash device)")
	}
	le := binary.LittleEndian
	s := &Superblock{
		Version:       le.Uint32(b[offVersion:]),
		HashType:      le.Uint32(b[offHashType:]),
		DataBlockSize: le.Uint32(b[offDataBS:]),
		HashBlockSize: le.Uint32(b[offHashBS:]),
		DataBlocks:    le.Uint64(b[offDataBlocks:]),
	}
	copy(s.UUID[:], b[offUUID:offUUID+16])
	alg := b[offAlgorithm : offAlgorithm+lenAlgorithm]
	n := bytes.IndexByte(alg, 0)
	if n < 0 {
		return nil, errors.New("verity superblock: algorithm: not NUL-terminated")
	}
	if !allZero(alg[n:]) {
		return nil, errors.New("verity superblock: algorithm: bytes after the NUL are not zero")
	}
	s.Algorithm = string(alg[:n])
	saltSize := int(le.Uint16(b[offSaltSize:]))
	if saltSize > MaxSaltSize {
		return nil, fmt.Errorf("verity superblock: salt_size %d exceeds %d", saltSize, MaxSaltSize)
	}
	s.Salt = append([]byte{}, b[offSalt:offSalt+saltSize]...)
	if !allZero(b[offSaltSize+2:offSalt]) || !allZero(b[offSalt+saltSize:]) {
		return nil, errors.New("verity superblock: padding or unused salt bytes are not zero")
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("verity superblock: %w", err)
	}
	return s, nil
}

// MarshalBinary encodes s as the 512-byte veritysetup superblock.
func (s *Superblock) MarshalBinary() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("verity superblock: %w", err)
	}
	b := make([]byte, SuperblockSize)
	copy(b, sbSignature)
	le := binary.LittleEndian
	le.PutUint32(b[offVersion:], s.Version)
	le.PutUint32(b[offHashType:], s.HashType)
	copy(b[offUUID:], s.UUID[:])
	copy(b[offAlgorithm:], s.Algorithm)
	le.PutUint32(b[offDataBS:], s.DataBlockSize)
	le.PutUint32(b[offHashBS:], s.HashBlockSize)
	le.PutUint64(b[offDataBlocks:], s.DataBlocks)
	le.PutUint16(b[offSaltSize:], uint16(len(s.Salt)))
	copy(b[offSalt:], s.Salt)
	return b, nil
}

// Params returns the tree parameters the superblock describes.
func (s *Superblock) Params() Params {
	return Params{
		HashAlgorithm: s.Algorithm,
		DataBlockSize: s.DataBlockSize,
		HashBlockSize: s.HashBlockSize,
		DataBlocks:    s.DataBlocks,
		Salt:          append([]byte{}, s.Salt...),
		UUID:          s.UUID,
	}
}

func (s *Superblock) check() error {
	if s.Version != 1 {
		return fmt.Errorf("version %d, only 1 is supported", s.Version)
	}
	if s.HashType != 1 {
		return fmt.Errorf("hash_type %d, only 1 is supported", s.HashType)
	}
	if len(s.Algorithm) >= lenAlgorithm {
		return fmt.Errorf("algorithm %.40q too long", s.Algorithm)
	}
	if len(s.Salt) > MaxSaltSize {
		return fmt.Errorf("salt_size %d exceeds %d", len(s.Salt), MaxSaltSize)
	}
	p := Params{
		HashAlgorithm: s.Algorithm,
		DataBlockSize: s.DataBlockSize,
		HashBlockSize: s.HashBlockSize,
		DataBlocks:    s.DataBlocks,
		Salt:          s.Salt,
	}
	_, err := p.geometry()
	return err
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
