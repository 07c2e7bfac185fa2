//go:build linux

package dmverity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/anatol/devmapper.go"
	"github.com/mcinit/mcinit/verity"
)

// Expected is what the signed policy says the root must be.
type Expected struct {
	RootHash   []byte
	Algorithm  string // "" means sha256
	Salt       []byte // nil: accept the superblock's salt
	DataBlocks uint64 // required; the superblock's count must equal it
}

// ParseExpected decodes an expected root from its text form (a policy
// root entry): lowercase hex root hash and salt ("" accepts the
// superblock's), the hash algorithm ("" for sha256), the data block count
// (0 accepts the superblock's).
func ParseExpected(rootHash, algorithm, salt string, dataBlocks uint64) (Expected, error) {
	e := Expected{Algorithm: algorithm, DataBlocks: dataBlocks}
	if e.Algorithm == "" {
		e.Algorithm = verity.DefaultHashAlgorithm
	}
	n := verity.DigestSize(e.Algorithm)
	if n == 0 {
		return e, fmt.Errorf("hash_algorithm %.40q not supported", algorithm)
	}
	var err error
	if e.RootHash, err = decodeHex(rootHash); err != nil || len(e.RootHash) != n {
		return e, fmt.Errorf("root_hash must be %d lowercase hex digits", 2*n)
	}
	if salt != "" {
		if e.Salt, err = decodeHex(salt); err != nil || len(e.Salt) > verity.MaxSaltSize {
			return e, fmt.Errorf("salt must be at most %d bytes of lowercase hex", verity.MaxSaltSize)
		}
	}
	return e, nil
}

// OnCorruption is what the kernel does when a block does not verify.
type OnCorruption string

const (
	Restart OnCorruption = "restart" // restart_on_corruption (the default)
	Panic   OnCorruption = "panic"   // panic_on_corruption
	EIO     OnCorruption = "eio"     // the read fails with EIO
)

func decodeHex(s string) ([]byte, error) {
	if strings.ToLower(s) != s {
		return nil, errors.New("not lowercase")
	}
	return hex.DecodeString(s)
}

// Plan is a checked dm-verity mapping, ready to activate.
type Plan struct {
	Name       string
	Superblock *verity.Superblock
	Layout     *verity.Result
	Table      devmapper.VerityTable
}

// maxNameLen is DM_NAME_LEN minus the terminating NUL.
const maxNameLen = 127

func checkName(name string) error {
	if name == "" || len(name) > maxNameLen || name == "." || name == ".." {
		return fmt.Errorf("device name %.40q: must be 1 to %d characters other than \".\" and \"..\"", name, maxNameLen)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.+", c)) {
			return fmt.Errorf("device name %.40q: only letters, digits and -_.+ allowed", name)
		}
	}
	return nil
}

// Params maps the behaviour to the target's optional arguments, count
// first as the kernel wants them.
func (on OnCorruption) Params() ([]string, error) {
	switch on {
	case Restart, "":
		return []string{"1", "restart_on_corruption"}, nil
	case Panic:
		return []string{"1", "panic_on_corruption"}, nil
	case EIO:
		return nil, nil
	}
	return nil, fmt.Errorf("verity_error %.40q: want restart, panic or eio", on)
}

// Prepare reads the superblock on hashDev (at offset 0: a hash partition of
// its own), checks it and both devices against want, checks the top of the
// tree against the root hash, and builds the table. It changes nothing.
func Prepare(name, dataDev, hashDev string, want Expected, onCorruption OnCorruption) (*Plan, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	params, err := onCorruption.Params()
	if err != nil {
		return nil, err
	}
	df, err := os.Open(dataDev)
	if err != nil {
		return nil, fmt.Errorf("verity data device: %w", err)
	}
	defer df.Close()
	hf, err := os.Open(hashDev)
	if err != nil {
		return nil, fmt.Errorf("verity hash device: %w", err)
	}
	defer hf.Close()
	sb, err := verity.ReadSuperblock(hf, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", hashDev, err)
	}
	dataSize, err := verity.DeviceSize(df)
	if err != nil {
		return nil, fmt.Errorf("%s: size: %w", dataDev, err)
	}
	hashSize, err := verity.DeviceSize(hf)
	if err != nil {
		return nil, fmt.Errorf("%s: size: %w", hashDev, err)
	}
	layout, err := check(sb, want, dataSize, hashSize, os.Getpagesize())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", hashDev, err)
	}
	if err := verity.CheckRoot(df, hf, 0, want.RootHash, sb.Params()); err != nil {
		var ce *verity.CorruptionError
		if errors.As(err, &ce) && ce.Top {
			return nil, fmt.Errorf("root hash mismatch: the policy's root hash %x does not match the tree on %s", want.RootHash, hashDev)
		}
		return nil, fmt.Errorf("%s: %w", hashDev, err)
	}
	return &Plan{Name: name, Superblock: sb, Layout: layout, Table: table(dataDev, hashDev, sb, layout, want.RootHash, params)}, nil
}

// check validates an untrusted superblock against the policy and the
// device sizes, and returns the tree layout.
func check(sb *verity.Superblock, want Expected, dataSize, hashSize int64, pageSize int) (*verity.Result, error) {
	alg := want.Algorithm
	if alg == "" {
		alg = verity.DefaultHashAlgorithm
	}
	switch {
	case sb.Algorithm != alg:
		return nil, fmt.Errorf("superblock hash algorithm %s, the policy wants %s", sb.Algorithm, alg)
	case len(want.RootHash) != verity.DigestSize(alg):
		return nil, fmt.Errorf("root hash is %d bytes, %s needs %d", len(want.RootHash), alg, verity.DigestSize(alg))
	case want.Salt != nil && !bytes.Equal(want.Salt, sb.Salt):
		return nil, fmt.Errorf("superblock salt %x differs from the policy's %x", sb.Salt, want.Salt)
	case want.DataBlocks == 0:
		// The superblock is unsigned: its count alone never decides how much
		// of the device is mapped.
		return nil, errors.New("the policy does not fix data_blocks for this root")
	case want.DataBlocks != sb.DataBlocks:
		return nil, fmt.Errorf("superblock data blocks %d differ from the policy's %d", sb.DataBlocks, want.DataBlocks)
	case int64(sb.DataBlockSize) > int64(pageSize) || int64(sb.HashBlockSize) > int64(pageSize):
		return nil, fmt.Errorf("block sizes %d/%d exceed the page size %d the kernel allows", sb.DataBlockSize, sb.HashBlockSize, pageSize)
	}
	layout, err := verity.Layout(sb.Params(), 0)
	if err != nil {
		return nil, err
	}
	if need := int64(layout.DataBlocks) * int64(layout.DataBlockSize); dataSize < need {
		return nil, fmt.Errorf("data device holds %d bytes, the superblock says %d blocks of %d", dataSize, layout.DataBlocks, layout.DataBlockSize)
	}
	if hashSize < layout.HashEnd {
		return nil, fmt.Errorf("hash device holds %d bytes, the tree needs %d", hashSize, layout.HashEnd)
	}
	return layout, nil
}

func table(dataDev, hashDev string, sb *verity.Superblock, l *verity.Result, root []byte, params []string) devmapper.VerityTable {
	salt := "-"
	if len(sb.Salt) > 0 {
		salt = hex.EncodeToString(sb.Salt)
	}
	return devmapper.VerityTable{
		Start:          0,
		Length:         l.DataBlocks * uint64(l.DataBlockSize), // bytes; the library divides by 512
		HashType:       1,
		DataDevice:     dataDev,
		HashDevice:     hashDev,
		DataBlockSize:  uint64(l.DataBlockSize),
		HashBlockSize:  uint64(l.HashBlockSize),
		NumDataBlocks:  l.DataBlocks,
		HashStartBlock: l.HashStartBlock,
		Algorithm:      sb.Algorithm,
		Digest:         hex.EncodeToString(root),
		Salt:           salt,
		Params:         params,
	}
}

// TableString renders t as `dmsetup table` shows it, for the log.
func TableString(t devmapper.VerityTable) string {
	f := []string{
		strconv.FormatUint(t.Start/devmapper.SectorSize, 10), strconv.FormatUint(t.Length/devmapper.SectorSize, 10), "verity",
		strconv.FormatUint(t.HashType, 10), t.DataDevice, t.HashDevice,
		strconv.FormatUint(t.DataBlockSize, 10), strconv.FormatUint(t.HashBlockSize, 10),
		strconv.FormatUint(t.NumDataBlocks, 10), strconv.FormatUint(t.HashStartBlock, 10),
		t.Algorithm, t.Digest, t.Salt,
	}
	return strings.Join(append(f, t.Params...), " ")
}

// String is the plan's table line.
func (p *Plan) String() string { return TableString(p.Table) }
