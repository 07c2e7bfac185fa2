// Package diskimage builds GPT test and demo disks on plain files with
// userspace tools only (no loop devices, no root): a root filesystem from a
// directory tree (erofs or ext4), optionally its dm-verity hash partition,
// and extra partitions, typed and named per the Discoverable Partitions
// Specification.
package diskimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mcinit/mcinit/rootfs"
	"github.com/mcinit/mcinit/verity"
)

// TypeLinuxData is the generic Linux data partition type. The root and
// root-verity types of the Discoverable Partitions Specification, and the
// root hash → PARTUUID rule, come from package rootfs, which /init uses to
// find them.
const TypeLinuxData = "0fc63daf-8483-4772-8e79-3d69d8477de4"

// Filesystem types for the root.
const (
	EROFS = "erofs"
	Ext4  = "ext4"
)

const (
	mib        = 1 << 20
	sectorSize = 512
	// Partitions start on 1 MiB boundaries; the last MiB holds the backup GPT.
	align = mib
)

// Spec describes a disk.
type Spec struct {
	Arch    string // amd64 or arm64: selects the DPS partition types
	RootDir string // directory tree that becomes the root filesystem
	// RootTar is a tar archive that becomes the root filesystem instead of
	// RootDir (see ExtractTar: ownership, modes and xattrs are kept).
	RootTar string
	// AllRoot makes every file root-owned and drops extended attributes:
	// only for generated trees whose owner is whoever built them (the test
	// root). By default owners, modes and xattrs (file capabilities) are
	// kept as they are in the tree.
	AllRoot bool
	// ROHelpers applies ApplyROHelpers to (a copy of) the tree: volatile
	// /tmp and /var/tmp, an empty /etc/machine-id.
	ROHelpers bool
	RootFS    string // EROFS (default) or Ext4
	// RootLabel is the root's GPT partition name; default "root".
	RootLabel string
	// RootPartUUID overrides the root's PARTUUID. By default it is the
	// first 128 bits of the root hash with Verity, and derived from the
	// image's content otherwise.
	RootPartUUID string
	// RootSize is the minimum root partition size in bytes (ext4: the
	// filesystem size); 0 sizes it to fit.
	RootSize int64
	// FSUUID is the root filesystem's UUID; default derived from the tree.
	FSUUID string

	Verity bool // add a dm-verity hash partition for the root
	// VeritySetup formats the hash tree with the real veritysetup binary
	// instead of mcinit's own verity package (interop tests); the bytes are
	// the same either way.
	VeritySetup bool
	// VerityLabel is the hash partition's name; default "root-verity".
	VerityLabel string
	// VerityPartUUID overrides the hash partition's PARTUUID (default:
	// the last 128 bits of the root hash).
	VerityPartUUID string
	// Salt (hex) and VerityUUID fix the verity superblock's salt and UUID;
	// by default both are derived from the root image, so the disk is a
	// function of its inputs either way.
	Salt       string
	VerityUUID string

	Extra []Partition // further partitions, in order after root (and verity)

	DiskGUID string // default derived from the content
}

// Partition is an extra partition.
type Partition struct {
	Label    string
	TypeUUID string // default TypeLinuxData
	PartUUID string // default derived from the label and disk
	Size     int64  // bytes, rounded up to 1 MiB; at least len(Content)
	// Format is "ext4" for an empty ext4 filesystem (named Label), or ""
	// to leave it unformatted (zeros, or Content).
	Format  string
	Content []byte // raw bytes written at the partition's start
	// Files are the files of a VFAT partition, by slash-separated path
	// (see ESP).
	Files map[string][]byte
}

// PartInfo describes one partition of a built disk.
type PartInfo struct {
	Number   int // 1-based GPT entry number
	Label    string
	TypeUUID string
	PartUUID string
	Offset   int64 // bytes from the disk's start
	Size     int64
}

// Result describes a built disk.
type Result struct {
	Path     string
	Size     int64
	DiskGUID string
	Root     PartInfo
	RootFS   string
	FSUUID   string
	// RootImageSize is the size of the root filesystem image (the verity
	// data area), which may be less than the partition.
	RootImageSize int64
	Verity        *PartInfo // nil without verity
	RootHash      string    // hex, with verity
	Salt          string    // hex, with verity
	DataBlocks    uint64    // verity data blocks (4096 bytes each)
	Extra         []PartInfo
}

// Build writes the disk described by spec to out.
func Build(spec Spec, out string) (*Result, error) {
	rootType, verityType, err := archTypes(spec.Arch)
	if err != nil {
		return nil, err
	}
	if (spec.RootDir == "") == (spec.RootTar == "") {
		return nil, errors.New("diskimage: want exactly one of Spec.RootDir and Spec.RootTar")
	}
	if spec.RootFS == "" {
		spec.RootFS = EROFS
	}
	if spec.RootLabel == "" {
		spec.RootLabel = "root"
	}
	if spec.VerityLabel == "" {
		spec.VerityLabel = "root-verity"
	}
	for _, u := range []struct{ name, v string }{
		{"RootPartUUID", spec.RootPartUUID}, {"VerityPartUUID", spec.VerityPartUUID},
		{"FSUUID", spec.FSUUID}, {"DiskGUID", spec.DiskGUID}, {"VerityUUID", spec.VerityUUID},
	} {
		if u.v != "" && !validUUID(u.v) {
			return nil, fmt.Errorf("diskimage: %s %q is not a UUID", u.name, u.v)
		}
	}

	tmp, err := os.MkdirTemp(filepath.Dir(out), ".diskimage-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if spec.Salt != "" {
		if b, err := hex.DecodeString(spec.Salt); err != nil || len(b) == 0 || len(b) > 256 {
			return nil, fmt.Errorf("diskimage: salt %q is not 1..256 bytes of hex", spec.Salt)
		}
	}
	if spec.RootTar != "" {
		spec.RootDir = filepath.Join(tmp, "tree")
		if err := extractTarFile(spec.RootTar, spec.RootDir); err != nil {
			return nil, err
		}
	} else if spec.ROHelpers {
		cp := filepath.Join(tmp, "tree")
		if err := copyTree(spec.RootDir, cp); err != nil {
			return nil, err
		}
		spec.RootDir = cp
	}
	if spec.ROHelpers {
		if err := ApplyROHelpers(spec.RootDir); err != nil {
			return nil, err
		}
	}

	res := &Result{Path: out, RootFS: spec.RootFS}
	treeID, err := treeDigest(spec.RootDir, !spec.AllRoot)
	if err != nil {
		return nil, err
	}
	res.FSUUID = spec.FSUUID
	if res.FSUUID == "" {
		res.FSUUID = derivedUUID(treeID, "fs")
	}

	rootImg := filepath.Join(tmp, "root.img")
	if err := makeRootFS(spec, res.FSUUID, rootImg); err != nil {
		return nil, err
	}
	st, err := os.Stat(rootImg)
	if err != nil {
		return nil, err
	}
	res.RootImageSize = st.Size()
	rootID, err := fileDigest(rootImg)
	if err != nil {
		return nil, err
	}

	type part struct {
		info PartInfo
		img  string // file copied in, or ""
		raw  []byte // bytes copied in
	}
	var parts []part
	rootPart := part{info: PartInfo{Label: spec.RootLabel, TypeUUID: rootType,
		PartUUID: spec.RootPartUUID, Size: max(roundUp(res.RootImageSize, align), roundUp(spec.RootSize, align))}, img: rootImg}
	if rootPart.info.PartUUID == "" {
		rootPart.info.PartUUID = derivedUUID(rootID, "root")
	}
	if spec.Verity {
		hashImg := filepath.Join(tmp, "verity.img")
		res.RootHash, res.Salt, res.DataBlocks, err = formatVerity(rootImg, hashImg, spec)
		if err != nil {
			return nil, err
		}
		dataUUID, hashUUID, err := rootfs.VerityUUIDs(res.RootHash)
		if err != nil || len(res.RootHash) != 64 {
			return nil, fmt.Errorf("diskimage: root hash %q is not a 256-bit hex digest", res.RootHash)
		}
		if spec.RootPartUUID == "" {
			rootPart.info.PartUUID = dataUUID.String()
		}
		hst, err := os.Stat(hashImg)
		if err != nil {
			return nil, err
		}
		vp := part{info: PartInfo{Label: spec.VerityLabel, TypeUUID: verityType,
			PartUUID: spec.VerityPartUUID, Size: roundUp(hst.Size(), align)}, img: hashImg}
		if vp.info.PartUUID == "" {
			vp.info.PartUUID = hashUUID.String()
		}
		parts = append(parts, rootPart, vp)
	} else {
		parts = append(parts, rootPart)
	}

	for i, x := range spec.Extra {
		if x.Label == "" {
			return nil, fmt.Errorf("diskimage: extra partition %d has no label", i)
		}
		if x.TypeUUID == "" {
			x.TypeUUID = TypeLinuxData
		}
		for _, u := range []string{x.TypeUUID, x.PartUUID} {
			if u != "" && !validUUID(u) {
				return nil, fmt.Errorf("diskimage: extra partition %q: %q is not a UUID", x.Label, u)
			}
		}
		size := max(x.Size, int64(len(x.Content)), 1)
		if x.Format == VFAT && x.Size == 0 {
			size = fatSize(x.Files)
		}
		p := part{info: PartInfo{Label: x.Label, TypeUUID: x.TypeUUID, PartUUID: x.PartUUID,
			Size: roundUp(size, align)}, raw: x.Content}
		if p.info.PartUUID == "" {
			p.info.PartUUID = derivedUUID(rootID, "extra:"+x.Label)
		}
		if len(x.Files) > 0 && x.Format != VFAT {
			return nil, fmt.Errorf("diskimage: extra partition %q: Files need Format %q", x.Label, VFAT)
		}
		switch x.Format {
		case "":
		case VFAT:
			if len(x.Content) > 0 {
				return nil, fmt.Errorf("diskimage: extra partition %q: Content and Format are exclusive", x.Label)
			}
			p.img = filepath.Join(tmp, fmt.Sprintf("extra%d.img", i))
			if err := makeFAT(p.img, x.Label, p.info.Size, x.Files); err != nil {
				return nil, err
			}
		case Ext4:
			if len(x.Content) > 0 {
				return nil, fmt.Errorf("diskimage: extra partition %q: Content and Format are exclusive", x.Label)
			}
			p.img = filepath.Join(tmp, fmt.Sprintf("extra%d.img", i))
			if err := mkfsExt4(p.img, "", x.Label, derivedUUID(rootID, "extrafs:"+x.Label), p.info.Size); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("diskimage: extra partition %q: unknown format %q (want ext4, vfat or empty)", x.Label, x.Format)
		}
		parts = append(parts, p)
	}

	res.DiskGUID = spec.DiskGUID
	if res.DiskGUID == "" {
		res.DiskGUID = derivedUUID(rootID, "disk")
	}
	// Lay the partitions out and create the GPT.
	off := int64(align)
	args := []string{"-o", "-U", res.DiskGUID}
	for i := range parts {
		p := &parts[i].info
		p.Number = i + 1
		p.Offset = off
		off += p.Size
		n := strconv.Itoa(p.Number)
		// Never -q here: with -n/-t/-c/-u it silently creates nothing.
		args = append(args,
			"-n", fmt.Sprintf("%s:%d:%d", n, p.Offset/sectorSize, (p.Offset+p.Size)/sectorSize-1),
			"-t", n+":"+p.TypeUUID, "-c", n+":"+p.Label, "-u", n+":"+p.PartUUID)
	}
	res.Size = off + align
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := f.Truncate(res.Size); err != nil {
		return nil, err
	}
	if err := run("sgdisk", append(args, out)...); err != nil {
		return nil, err
	}
	for _, p := range parts {
		switch {
		case p.img != "":
			err = copyInto(f, p.img, p.info.Offset, p.info.Size)
		case len(p.raw) > 0:
			_, err = f.WriteAt(p.raw, p.info.Offset)
		}
		if err != nil {
			return nil, fmt.Errorf("diskimage: partition %q: %w", p.info.Label, err)
		}
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	res.Root = parts[0].info
	rest := parts[1:]
	if spec.Verity {
		v := parts[1].info
		res.Verity = &v
		rest = parts[2:]
	}
	for _, p := range rest {
		res.Extra = append(res.Extra, p.info)
	}
	return res, nil
}

func archTypes(arch string) (root, verity string, err error) {
	goarch := map[string]string{"amd64": "amd64", "x86_64": "amd64", "arm64": "arm64", "aarch64": "arm64"}[arch]
	rt, err := rootfs.RootType(goarch)
	if err != nil {
		return "", "", fmt.Errorf("diskimage: unsupported architecture %q (want amd64 or arm64)", arch)
	}
	vt, err := rootfs.VerityType(goarch)
	if err != nil {
		return "", "", fmt.Errorf("diskimage: unsupported architecture %q (want amd64 or arm64)", arch)
	}
	return rt.String(), vt.String(), nil
}

// makeRootFS builds the root filesystem image from spec.RootDir.
func makeRootFS(spec Spec, fsUUID, img string) error {
	switch spec.RootFS {
	case EROFS:
		// -T0 and the fixed UUID make the image a function of the tree
		// (names, contents, modes, owners, xattrs) only.
		if spec.AllRoot {
			return run("mkfs.erofs", "--quiet", "-T0", "--all-root", "-x-1", "-U", fsUUID, img, spec.RootDir)
		}
		return run("mkfs.erofs", "--quiet", "-T0", "-U", fsUUID, img, spec.RootDir)
	case Ext4:
		size := spec.RootSize
		if size == 0 {
			used, err := treeSize(spec.RootDir)
			if err != nil {
				return err
			}
			size = used + used/4 + 8*mib
		}
		if err := mkfsExt4(img, spec.RootDir, spec.RootLabel, fsUUID, roundUp(size, mib)); err != nil {
			return err
		}
		return resetExt4Times(img, spec.RootDir)
	}
	return fmt.Errorf("diskimage: unknown root filesystem %q (want erofs or ext4)", spec.RootFS)
}

// mkfsExt4 makes an ext4 filesystem of size bytes in img, filled from dir
// when dir is not empty. UUID, hash seed and creation time are fixed;
// the inode times copied by -d are reset by resetExt4Times.
func mkfsExt4(img, dir, label, uuid string, size int64) error {
	if len(label) > 16 {
		label = label[:16]
	}
	args := []string{"-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-U", uuid,
		"-E", "root_owner=0:0,hash_seed=" + uuid}
	if label != "" {
		args = append(args, "-L", label)
	}
	if dir != "" {
		args = append(args, "-d", dir)
	}
	args = append(args, img, strconv.FormatInt(size/1024, 10)+"k")
	cmd := exec.Command("mkfs.ext4", args...)
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME="+fixedTime, "SOURCE_DATE_EPOCH="+fixedTime)
	return runCmd(cmd)
}

// fixedTime is the timestamp given to every inode and superblock field
// (2023-11-14), for reproducible images.
const fixedTime = "1700000000"

// resetExt4Times sets atime, ctime and mtime of every inode copied from dir
// (and lost+found) to fixedTime with debugfs: mkfs.ext4 -d copies the
// source's ctimes, which no one can set, so without this the image
// depends on when the tree was written.
func resetExt4Times(img, dir string) error {
	var b strings.Builder
	paths := []string{"/", "/lost+found"}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." {
			paths = append(paths, "/"+filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("diskimage: root tree: %w", err)
	}
	for _, p := range paths {
		if strings.ContainsAny(p, "\"\n\\") {
			return fmt.Errorf("diskimage: ext4 root: path %q cannot be quoted for debugfs", p)
		}
		for _, f := range []string{"atime", "ctime", "mtime"} {
			fmt.Fprintf(&b, "sif \"%s\" %s %s\n", p, f, fixedTime)
		}
	}
	cmds := img + ".debugfs"
	if err := os.WriteFile(cmds, []byte(b.String()), 0o644); err != nil {
		return err
	}
	defer os.Remove(cmds)
	cmd := exec.Command("debugfs", "-w", "-f", cmds, img)
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME="+fixedTime)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debugfs: %v: %s", err, strings.TrimSpace(out.String()))
	}
	// debugfs reports per-command failures on its output, not in its status.
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "sif:") || strings.Contains(line, "not found") {
			return fmt.Errorf("debugfs: %s", line)
		}
	}
	return nil
}

// formatVerity writes the dm-verity hash tree (with a superblock; sha256,
// 4096-byte blocks) of dataPath into hashPath. The salt and the verity
// UUID are derived from the data, so the same data gives the same hash
// partition. The tree comes from mcinit's verity package, or from the real
// veritysetup when useVeritysetup is set (interop tests); both write the
// same bytes.
func formatVerity(dataPath, hashPath string, spec Spec) (rootHash, salt string, dataBlocks uint64, err error) {
	d, err := fileDigest(dataPath)
	if err != nil {
		return "", "", 0, err
	}
	saltSum := sha256.Sum256(append([]byte("mcinit verity salt\x00"), d[:]...))
	salt = hex.EncodeToString(saltSum[:])
	if spec.Salt != "" {
		salt = strings.ToLower(spec.Salt)
	}
	vuuid := derivedUUID(d, "verity")
	if spec.VerityUUID != "" {
		vuuid = strings.ToLower(spec.VerityUUID)
	}
	if !spec.VeritySetup {
		uuid, err := verity.ParseUUID(vuuid)
		if err != nil {
			return "", "", 0, err
		}
		saltBytes, err := hex.DecodeString(salt)
		if err != nil {
			return "", "", 0, err
		}
		if err := os.WriteFile(hashPath, nil, 0o644); err != nil {
			return "", "", 0, err
		}
		res, err := verity.FormatFiles(dataPath, hashPath, 0, verity.Params{Salt: saltBytes, UUID: uuid})
		if err != nil {
			return "", "", 0, fmt.Errorf("verity format: %w", err)
		}
		return hex.EncodeToString(res.RootHash), hex.EncodeToString(res.Salt), res.DataBlocks, nil
	}
	if err := os.WriteFile(hashPath, nil, 0o644); err != nil {
		return "", "", 0, err
	}
	cmd := exec.Command("veritysetup", "format", "--hash=sha256", "--data-block-size=4096",
		"--hash-block-size=4096", "--salt="+salt, "--uuid="+vuuid, dataPath, hashPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", "", 0, fmt.Errorf("veritysetup format: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return parseVerityFormat(stdout.String())
}

// parseVerityFormat reads "Root hash:", "Salt:" and "Data blocks:" from
// veritysetup format's output.
func parseVerityFormat(out string) (rootHash, salt string, dataBlocks uint64, err error) {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "Root hash":
			rootHash = v
		case "Salt":
			salt = v
		case "Data blocks":
			dataBlocks, err = strconv.ParseUint(v, 10, 64)
			if err != nil {
				return "", "", 0, fmt.Errorf("veritysetup format: data blocks %q: %w", v, err)
			}
		}
	}
	if rootHash == "" || dataBlocks == 0 {
		return "", "", 0, fmt.Errorf("veritysetup format: no root hash or data blocks in its output")
	}
	if _, err := hex.DecodeString(rootHash); err != nil {
		return "", "", 0, fmt.Errorf("veritysetup format: root hash %q: %w", rootHash, err)
	}
	return rootHash, salt, dataBlocks, nil
}

// copyInto copies the image file into f at off, at most size bytes,
// skipping all-zero chunks so the disk file stays sparse.
func copyInto(f *os.File, img string, off, size int64) error {
	src, err := os.Open(img)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if st.Size() > size {
		return fmt.Errorf("image %s (%d bytes) larger than its partition (%d)", img, st.Size(), size)
	}
	buf := make([]byte, mib)
	zero := make([]byte, mib)
	for pos := int64(0); ; {
		n, err := io.ReadFull(src, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := f.WriteAt(buf[:n], off+pos); werr != nil {
				return werr
			}
		}
		pos += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func run(name string, args ...string) error { return runCmd(exec.Command(name, args...)) }

func runCmd(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// formatUUID formats 16 bytes, in order, as a UUID string (the DPS rule
// for verity PARTUUIDs).
func formatUUID(b []byte) string {
	h := hex.EncodeToString(b[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// derivedUUID makes a stable version-4-shaped UUID from a digest and a purpose.
func derivedUUID(d [32]byte, purpose string) string {
	s := sha256.Sum256(append(d[:], purpose...))
	s[6] = s[6]&0x0f | 0x40
	s[8] = s[8]&0x3f | 0x80
	return formatUUID(s[:16])
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

func fileDigest(path string) ([32]byte, error) {
	var d [32]byte
	f, err := os.Open(path)
	if err != nil {
		return d, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return d, err
	}
	copy(d[:], h.Sum(nil))
	return d, nil
}
