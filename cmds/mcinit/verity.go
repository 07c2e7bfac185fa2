package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mcinit/mcinit/verity"
)

func init() {
	register("verity", "build or check dm-verity hash trees (veritysetup format|verify)", runVerity)
}

func runVerity(args []string) error {
	if len(args) == 0 {
		return usagef("usage: mcinit verity format|verify [flags] DATA HASH [ROOTHASH]")
	}
	switch args[0] {
	case "format":
		return verityFormat(os.Stdout, args[1:])
	case "verify":
		return verityVerify(args[1:])
	}
	return usagef("verity: unknown action %q (format or verify)", args[0])
}

// verityFlags are veritysetup's options, with its names and defaults.
type verityFlags struct {
	fs                   *flag.FlagSet
	hash, salt, uuid     string
	dataBS, hashBS       uint
	dataBlocks           uint64
	hashOffset           int64
	noSuperblock         bool
	format               uint
	saltSet, uuidAllowed bool
}

func newVerityFlags(name string, withUUID bool) *verityFlags {
	v := &verityFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError), uuidAllowed: withUUID}
	fs := v.fs
	fs.StringVar(&v.hash, "hash", verity.DefaultHashAlgorithm, "hash algorithm: sha256, sha512 or sha1")
	fs.UintVar(&v.dataBS, "data-block-size", verity.DefaultBlockSize, "data block size in bytes")
	fs.UintVar(&v.hashBS, "hash-block-size", verity.DefaultBlockSize, "hash block size in bytes")
	fs.Uint64Var(&v.dataBlocks, "data-blocks", 0, "number of data blocks (default: the whole data device)")
	fs.Int64Var(&v.hashOffset, "hash-offset", 0, "byte offset of the hash area on the hash device")
	fs.StringVar(&v.salt, "salt", "", "salt as hex, or - for none (default: 32 random bytes)")
	fs.BoolVar(&v.noSuperblock, "no-superblock", false, "do not write or read the veritysetup superblock")
	fs.UintVar(&v.format, "format", 1, "hash format type (only 1)")
	if withUUID {
		fs.StringVar(&v.uuid, "uuid", "", "superblock UUID (default: random)")
	}
	return v
}

// parse accepts flags before, between and after the positional arguments,
// as veritysetup does.
func (v *verityFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := v.fs.Parse(args); err != nil {
			return nil, usagef("%v", err)
		}
		if v.fs.NArg() == 0 {
			break
		}
		pos = append(pos, v.fs.Arg(0))
		args = v.fs.Args()[1:]
	}
	v.fs.Visit(func(f *flag.Flag) {
		if f.Name == "salt" {
			v.saltSet = true
		}
	})
	return pos, nil
}

func (v *verityFlags) params() (verity.Params, error) {
	if v.format != 1 {
		return verity.Params{}, usagef("--format %d: only format 1 is supported", v.format)
	}
	if v.dataBS > 1<<31 || v.hashBS > 1<<31 {
		return verity.Params{}, usagef("block size too large")
	}
	p := verity.Params{
		HashAlgorithm: v.hash,
		DataBlockSize: uint32(v.dataBS),
		HashBlockSize: uint32(v.hashBS),
		DataBlocks:    v.dataBlocks,
		NoSuperblock:  v.noSuperblock,
	}
	if v.saltSet {
		if v.salt == "-" {
			p.Salt = []byte{}
		} else {
			s, err := hex.DecodeString(v.salt)
			if err != nil {
				return p, usagef("--salt %.40q: want hex or -", v.salt)
			}
			p.Salt = s
		}
	}
	if v.uuid != "" {
		if v.noSuperblock {
			return p, usagef("--uuid needs a superblock")
		}
		u, err := verity.ParseUUID(v.uuid)
		if err != nil {
			return p, usagef("--uuid: %v", err)
		}
		p.UUID = u
	}
	return p, nil
}

func verityFormat(w io.Writer, args []string) error {
	v := newVerityFlags("verity format", true)
	pos, err := v.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: mcinit verity format [flags] DATA HASH")
	}
	p, err := v.params()
	if err != nil {
		return err
	}
	res, err := verity.FormatFiles(pos[0], pos[1], v.hashOffset, p)
	if err != nil {
		return err
	}
	uuid := ""
	if !p.NoSuperblock {
		uuid = verity.FormatUUID(res.UUID)
	}
	salt := "-"
	if len(res.Salt) > 0 {
		salt = hex.EncodeToString(res.Salt)
	}
	// The layout of veritysetup's report, so scripts can parse either.
	fmt.Fprintf(w, "VERITY header information for %s\n", pos[1])
	fmt.Fprintf(w, "UUID:            \t%s\n", uuid)
	fmt.Fprintf(w, "Hash type:       \t1\n")
	fmt.Fprintf(w, "Data blocks:     \t%d\n", res.DataBlocks)
	fmt.Fprintf(w, "Data block size: \t%d\n", res.DataBlockSize)
	fmt.Fprintf(w, "Hash blocks:     \t%d\n", res.HashBlocks)
	fmt.Fprintf(w, "Hash block size: \t%d\n", res.HashBlockSize)
	fmt.Fprintf(w, "Hash algorithm:  \t%s\n", res.HashAlgorithm)
	fmt.Fprintf(w, "Salt:            \t%s\n", salt)
	fmt.Fprintf(w, "Root hash:      \t%x\n", res.RootHash)
	if v.hashOffset == 0 {
		fmt.Fprintf(w, "Hash device size: \t%d [bytes]\n", res.HashEnd)
	}
	return nil
}

func verityVerify(args []string) error {
	v := newVerityFlags("verity verify", false)
	pos, err := v.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 3 {
		return usagef("usage: mcinit verity verify [flags] DATA HASH ROOTHASH")
	}
	root, err := hex.DecodeString(strings.ToLower(pos[2]))
	if err != nil || len(root) == 0 {
		return usagef("root hash %.80q: want hex", pos[2])
	}
	p, err := v.params()
	if err != nil {
		return err
	}
	if !p.NoSuperblock {
		// The superblock decides; only flags given explicitly must agree.
		set := map[string]bool{}
		v.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["hash"] {
			p.HashAlgorithm = ""
		}
		if !set["data-block-size"] {
			p.DataBlockSize = 0
		}
		if !set["hash-block-size"] {
			p.HashBlockSize = 0
		}
	}
	err = verity.VerifyFiles(pos[0], pos[1], v.hashOffset, root, p)
	var ce *verity.CorruptionError
	if errors.As(err, &ce) {
		return rejected(fmt.Errorf("verification failed: %w", err))
	}
	return err
}
