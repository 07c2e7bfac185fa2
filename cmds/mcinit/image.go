package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mcinit/mcinit/diskimage"
	"github.com/mcinit/mcinit/grantpart"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/uki"
)

func init() {
	register("image", "build a demo/test disk: GPT with root (erofs|ext4), verity and extra partitions", runImage)
}

// kvFlags collects repeated KEY=VALUE flags.
type kvFlags [][2]string

func (f *kvFlags) String() string { return "" }
func (f *kvFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" || v == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	*f = append(*f, [2]string{k, v})
	return nil
}

func runImage(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	arch := fs.String("arch", "amd64", "target architecture: amd64 or arm64 (partition types, testinit build)")
	out := fs.String("out", "", "disk image to write (required)")
	fsType := fs.String("fs", diskimage.EROFS, "root filesystem: erofs or ext4")
	verity := fs.Bool("verity", false, "add a dm-verity hash partition; PARTUUIDs follow the root hash")
	rootDir := fs.String("root-dir", "", "use this tree as the root verbatim, owners, modes and xattrs included (default: the standard test root with testinit)")
	rootTar := fs.String("root-tar", "", "use this tar archive (plain or gzip; made with tar --xattrs --numeric-owner) as the root, owners, modes and xattrs included; extracting foreign owners needs root")
	roHelpers := fs.Bool("ro-helpers", false, "prepare a general-purpose root to run read-only: tmpfs /tmp and /var/tmp via /etc/fstab, empty /etc/machine-id (see docs/production.md); the given tree is not changed")
	allRoot := fs.Bool("all-root", false, "make every file of -root-dir/-root-tar root-owned and drop xattrs (the generated test root always is)")
	salt := fs.String("salt", "", "verity salt, hex (default: derived from the root image)")
	veritySBUUID := fs.String("uuid", "", "verity superblock UUID (default: derived from the root image)")
	fsUUID := fs.String("fs-uuid", "", "root filesystem UUID (default: derived from the tree)")
	testinit := fs.String("testinit", "", "prebuilt testinit binary for -arch (default: build ./cmds/testinit)")
	var adds, raws kvFlags
	fs.Var(&adds, "add", "ROOTPATH=HOSTFILE: add a file to the test root, e.g. /usr/bin/mcinit=out/mcinit (repeatable)")
	rootLabel := fs.String("root-label", "root", "root partition name")
	rootUUID := fs.String("root-partuuid", "", "root PARTUUID (default: from the root hash with -verity, else from the content)")
	rootSize := fs.String("root-size", "", "minimum root partition size, e.g. 64M")
	verityLabel := fs.String("verity-label", "root-verity", "verity hash partition name")
	verityUUID := fs.String("verity-partuuid", "", "verity PARTUUID (default: last 128 bits of the root hash)")
	upperLabel := fs.String("upper-label", "", "add a development upper partition with this name")
	upperSize := fs.String("upper-size", "64M", "size of the upper partition")
	upperFormat := fs.String("upper-format", diskimage.Ext4, "upper partition format: ext4, or none to leave it unformatted")
	grantsDir := fs.String("grants", "", "add the mcinit-grants partition (1 MiB) holding DIR/*.toml grants and their .sig files; an empty DIR makes an empty one (mcinit grant write fills it later)")
	fs.Var(&raws, "raw", "LABEL=FILE: add a partition holding FILE's raw bytes (repeatable)")
	ukiPath := fs.String("uki", "", "add an EFI System Partition (FAT) holding this UKI at \\EFI\\BOOT\\BOOTX64.EFI (amd64) or BOOTAA64.EFI (arm64), the path firmware boots without a boot entry")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mcinit image -arch amd64|arm64 -out disk.img [-verity] [-fs erofs|ext4] [-upper-label L -upper-size 64M] [-grants DIR] [-uki UKI.efi] [-salt HEX -uuid U] [-root-dir DIR | -root-tar FILE | -testinit BIN -add /path=FILE ...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return usagef("-out is required")
	}
	goarch, err := imageArch(*arch)
	if err != nil {
		return usagef("-arch: %v", err)
	}
	if *fsType != diskimage.EROFS && *fsType != diskimage.Ext4 {
		return usagef("-fs: %q is not erofs or ext4", *fsType)
	}
	if *rootDir != "" && *rootTar != "" {
		return usagef("give at most one of -root-dir and -root-tar")
	}
	given := *rootDir != "" || *rootTar != ""
	if given && (*testinit != "" || len(adds) > 0) {
		return usagef("-root-dir and -root-tar are used verbatim: they exclude -testinit and -add")
	}
	if (*salt != "" || *veritySBUUID != "") && !*verity {
		return usagef("-salt and -uuid need -verity")
	}
	spec := diskimage.Spec{Arch: goarch, RootFS: *fsType, Verity: *verity, RootTar: *rootTar, AllRoot: *allRoot || !given, ROHelpers: *roHelpers,
		RootLabel: *rootLabel, RootPartUUID: *rootUUID, VerityLabel: *verityLabel, VerityPartUUID: *verityUUID,
		Salt: *salt, VerityUUID: *veritySBUUID, FSUUID: *fsUUID}
	if *rootSize != "" {
		if spec.RootSize, err = parseSize(*rootSize); err != nil {
			return usagef("-root-size: %v", err)
		}
	}
	if *upperLabel != "" {
		n, err := parseSize(*upperSize)
		if err != nil {
			return usagef("-upper-size: %v", err)
		}
		p := diskimage.Partition{Label: *upperLabel, Size: n}
		switch *upperFormat {
		case diskimage.Ext4:
			p.Format = diskimage.Ext4
		case "none":
		default:
			return usagef("-upper-format: %q is not ext4 or none", *upperFormat)
		}
		spec.Extra = append(spec.Extra, p)
	}
	for _, r := range raws {
		b, err := os.ReadFile(r[1])
		if err != nil {
			return fmt.Errorf("-raw %s: %w", r[0], err)
		}
		spec.Extra = append(spec.Extra, diskimage.Partition{Label: r[0], Content: b})
	}
	if *grantsDir != "" {
		files, err := grantDirFiles(*grantsDir)
		if err != nil {
			return fmt.Errorf("-grants: %w", err)
		}
		es, err := grantEntries(files, nil)
		if err != nil {
			return fmt.Errorf("-grants: %w", err)
		}
		c, err := grantpart.Build(es)
		if err != nil {
			return fmt.Errorf("-grants: %w", err)
		}
		spec.Extra = append(spec.Extra, diskimage.Partition{Label: grantpart.Label, TypeUUID: grantpart.TypeUUID,
			Size: grantpart.DefaultPartSize, Content: c})
	}
	if *ukiPath != "" {
		b, err := os.ReadFile(*ukiPath)
		if err != nil {
			return fmt.Errorf("-uki: %w", err)
		}
		dst, err := uki.RemovableMediaPath(goarch)
		if err != nil {
			return usagef("-uki: %v", err)
		}
		spec.Extra = append(spec.Extra, diskimage.ESP(map[string][]byte{dst: b}))
	}

	tmp, err := os.MkdirTemp("", "mcinit-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	spec.RootDir = *rootDir
	if !given {
		bin := *testinit
		if bin == "" {
			root, err := moduleRoot()
			if err != nil {
				return fmt.Errorf("building testinit: %w (or pass -testinit)", err)
			}
			bin = filepath.Join(tmp, "testinit")
			fmt.Fprintf(os.Stderr, "mcinit image: building testinit for %s\n", goarch)
			if err := diskimage.GoBuild(context.Background(), root, "./cmds/testinit", goarch, bin); err != nil {
				return err
			}
		}
		files := map[string]string{}
		for _, a := range adds {
			files[a[0]] = a[1]
		}
		spec.RootDir = filepath.Join(tmp, "root")
		if err := diskimage.WriteTestRoot(spec.RootDir, diskimage.RootOptions{Init: bin, Files: files}); err != nil {
			return err
		}
	}
	res, err := diskimage.Build(spec, *out)
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		fmt.Println(string(b))
		return nil
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "disk:            %s (%d bytes, GUID %s)\n", res.Path, res.Size, res.DiskGUID)
	fmt.Fprintf(w, "root:            partition %d %q PARTUUID=%s (%s, fs UUID %s)\n", res.Root.Number, res.Root.Label, res.Root.PartUUID, res.RootFS, res.FSUUID)
	if res.Verity != nil {
		fmt.Fprintf(w, "verity:          partition %d %q PARTUUID=%s\n", res.Verity.Number, res.Verity.Label, res.Verity.PartUUID)
		fmt.Fprintf(w, "root hash:       %s\n", res.RootHash)
		fmt.Fprintf(w, "salt:            %s\n", res.Salt)
		fmt.Fprintf(w, "data blocks:     %d\n", res.DataBlocks)
	}
	if res.Verity != nil {
		// The policy entry to paste: data_blocks is required, since the
		// hash partition's superblock is not signed.
		entry, err := policy.MarshalRoot(policy.Root{RootHash: res.RootHash, Salt: res.Salt, DataBlocks: res.DataBlocks})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "policy:\n  %s\n", strings.ReplaceAll(strings.TrimSuffix(string(entry), "\n"), "\n", "\n  "))
	}
	for _, p := range res.Extra {
		fmt.Fprintf(w, "extra:           partition %d %q PARTUUID=%s (%d bytes)\n", p.Number, p.Label, p.PartUUID, p.Size)
	}
	return w.Flush()
}

func imageArch(a string) (string, error) {
	switch a {
	case "amd64", "x86_64":
		return "amd64", nil
	case "arm64", "aarch64":
		return "arm64", nil
	}
	return "", fmt.Errorf("%q is not amd64 or arm64", a)
}

// parseSize parses a byte count with an optional K, M or G suffix (powers of 1024).
func parseSize(s string) (int64, error) {
	orig, mult := s, int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("bad size %q (want e.g. 64M, up to 1T)", orig)
	}
	return n * mult, nil
}
