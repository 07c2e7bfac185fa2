// Package initramfs packs mcinit's initramfs image: the device payload
// (mcinit's /init and, for development-capable images, a small rescue
// toolset, as one busybox-style Go binary built once per version and arch
// by package initramfs/device) plus the trusted configuration (policy,
// signatures, keys, board files, grants) and exactly the kernel modules the
// boards need. Packing needs no Go toolchain; the same inputs give a
// byte-identical, LZ4-compressed (legacy frame) newc archive.
package initramfs

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pierrec/lz4/v4"
	"github.com/u-root/mkuimage/cpio"

	"github.com/mcinit/mcinit/initramfs/layout"
	"github.com/mcinit/mcinit/internal/boundedfile"
)

// Paths inside the image; /init reads its configuration from here.
const (
	ConfigDir  = layout.ConfigDir
	PolicyFile = layout.PolicyFile
	SigFile    = layout.SigFile
	KeysDir    = layout.KeysDir
	BoardsDir  = layout.BoardsDir
	GrantsDir  = layout.GrantsDir
	ModulesDir = layout.ModulesDir
)

// File is one file placed into the image with a fixed mode.
type File struct {
	Path string // inside the image, relative ("etc/mcinit/policy.toml")
	Data []byte
	Mode uint64 // permission bits
}

// Spec describes one image.
type Spec struct {
	Arch       string // GOARCH: amd64 or arm64
	Files      []File
	Rescue     bool   // include the rescue shell commands
	ModuleRoot string // e.g. /work/kernel/lib/modules/6.1.0-57-cloud-amd64
	// KernelRelease names lib/modules/<release> inside the image; it must
	// equal the booted kernel's `uname -r`.
	KernelRelease string
	// ModuleFiles are the module files (dependency closure, as resolved
	// by kmodules), Path relative to lib/modules/<release>, and ModulesDep
	// the modules.dep text for them. ModuleRoot is read for
	// modules.builtin.
	ModuleFiles []File
	ModulesDep  []byte
	// Device is the device payload: an uncompressed newc archive holding
	// /init and bbin/ as initramfs/device builds it (DeviceFile names it).
	Device []byte
}

// DeviceFile names the device payload for arch inside a payload
// directory: DIR/<arch>/init.cpio, or init-rescue.cpio with the rescue
// commands.
func DeviceFile(arch string, rescue bool) string {
	if rescue {
		return path.Join(arch, "init-rescue.cpio")
	}
	return path.Join(arch, "init.cpio")
}

// Build writes the LZ4-compressed initramfs described by spec to w.
func Build(spec Spec, w io.Writer) error {
	if spec.Arch != "amd64" && spec.Arch != "arm64" {
		return fmt.Errorf("initramfs: unsupported arch %q (want amd64 or arm64)", spec.Arch)
	}
	if len(spec.Device) == 0 {
		return errors.New("initramfs: no device payload (Spec.Device)")
	}
	base, err := baseArchive(spec)
	if err != nil {
		return err
	}
	dev, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(spec.Device)))
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("initramfs: device payload: %w", err)
	}
	all, err := cpio.ReadAllRecords(base.Reader())
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("initramfs: %w", err)
	}
	byName := map[string]cpio.Record{}
	for _, r := range all {
		byName[r.Name] = r
	}
	hasInit := false
	for _, r := range dev {
		if r.Name == "TRAILER!!!" {
			continue
		}
		hasInit = hasInit || r.Name == "init"
		if old, ok := byName[r.Name]; ok {
			// Directories may be in both; anything else is a clash.
			if old.Mode&cpio.S_IFMT == cpio.S_IFDIR && r.Mode&cpio.S_IFMT == cpio.S_IFDIR {
				continue
			}
			return fmt.Errorf("initramfs: %s is in the device payload and the configuration", r.Name)
		}
		byName[r.Name] = r
		all = append(all, r)
	}
	if !hasInit {
		return errors.New("initramfs: device payload has no init")
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	cpio.MakeAllReproducible(all)
	var raw bytes.Buffer
	rw := cpio.Newc.Writer(&raw)
	if err := cpio.WriteRecords(rw, all); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	return compress(w, raw.Bytes())
}

// compress writes the archive in the LZ4 legacy frame format (`lz4 -l`,
// the one the kernel's unlz4 reads), with LZ4's strongest (HC) level. The
// kernel unpacks it in about half the time of gzip -9 or zstd -19 for a
// slightly larger image (docs/benchmarks.md); every kernel mcinit targets
// has CONFIG_RD_LZ4. One goroutine and no timestamps keep the output a
// pure function of the input.
func compress(w io.Writer, raw []byte) error {
	zw := lz4.NewWriter(w)
	if err := zw.Apply(lz4.LegacyOption(true), lz4.CompressionLevelOption(lz4.Level9), lz4.ConcurrencyOption(1)); err != nil {
		return fmt.Errorf("initramfs: lz4: %w", err)
	}
	if _, err := zw.Write(raw); err != nil {
		return fmt.Errorf("initramfs: lz4: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("initramfs: lz4: %w", err)
	}
	return nil
}

// Magic numbers of the compressed formats Decompress reads.
var (
	magicLZ4Legacy = []byte{0x02, 0x21, 0x4c, 0x18}
	magicGzip      = []byte{0x1f, 0x8b}
)

// maxArchive bounds what Decompress inflates: far above any image mcinit
// builds (a few MiB), far below what a hostile one could claim.
const maxArchive = 1 << 30

// Decompress returns the newc archive inside an initramfs compressed with
// LZ4 in the legacy frame format (mcinit's own images) or gzip (older
// images, test variants), told apart by their magic numbers.
func Decompress(data []byte) ([]byte, error) {
	var r io.Reader
	switch {
	case bytes.HasPrefix(data, magicLZ4Legacy):
		r = lz4.NewReader(bytes.NewReader(data))
	case bytes.HasPrefix(data, magicGzip):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("initramfs: gzip: %w", err)
		}
		r = zr
	default:
		return nil, errors.New("initramfs: neither lz4 (legacy frame) nor gzip compressed")
	}
	return boundedfile.ReadAll(r, "initramfs: decompressed archive", maxArchive)
}

// baseArchive holds everything that is not a Go binary: device nodes,
// directories, configuration and kernel modules, all with fixed modes.
func baseArchive(spec Spec) (*cpio.Archive, error) {
	recs := []cpio.Record{
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.CharDev("dev/null", 0o666, 1, 3),
	}
	dirs := map[string]bool{}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "newroot", "etc", ConfigDir, KeysDir, BoardsDir, GrantsDir} {
		dirs[d] = true
	}
	files := append([]File(nil), spec.Files...)
	// A kernel tree gives the module directory even when every module the
	// boards name is built in: modules.builtin is then what tells /init
	// those modules are there, and without it the boot would refuse.
	if len(spec.ModuleFiles) > 0 || spec.KernelRelease != "" {
		if spec.KernelRelease == "" || strings.ContainsAny(spec.KernelRelease, "/ ") {
			return nil, fmt.Errorf("initramfs: bad kernel release %q", spec.KernelRelease)
		}
		kdir := path.Join(ModulesDir, spec.KernelRelease)
		for _, m := range spec.ModuleFiles {
			files = append(files, File{Path: path.Join(kdir, m.Path), Data: m.Data, Mode: m.Mode})
		}
		files = append(files, File{Path: path.Join(kdir, "modules.dep"), Data: spec.ModulesDep, Mode: 0o644})
		// Built-in modules satisfy a board's module list at boot.
		if spec.ModuleRoot != "" {
			if b, err := os.ReadFile(filepath.Join(spec.ModuleRoot, "modules.builtin")); err == nil {
				files = append(files, File{Path: path.Join(kdir, "modules.builtin"), Data: b, Mode: 0o644})
			}
		}
	}
	seen := map[string]bool{}
	for _, f := range files {
		p := path.Clean(strings.TrimPrefix(f.Path, "/"))
		if p == "." || strings.HasPrefix(p, "../") || p == "init" {
			return nil, fmt.Errorf("initramfs: refusing file path %q", f.Path)
		}
		if seen[p] {
			return nil, fmt.Errorf("initramfs: file %q given twice", p)
		}
		seen[p] = true
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
		recs = append(recs, cpio.StaticRecord(f.Data, cpio.Info{Name: p, Mode: cpio.S_IFREG | (f.Mode & 0o7777)}))
	}
	for d := range dirs {
		recs = append(recs, cpio.Directory(d, 0o755))
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	a, err := cpio.ArchiveFromRecords(recs)
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	return a, nil
}

// ReadArchive lists the records of a compressed newc archive (see
// Decompress; for tests and `mcinit initramfs -list`).
func ReadArchive(data []byte) ([]cpio.Record, error) {
	raw, err := Decompress(data)
	if err != nil {
		return nil, err
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("initramfs: reading archive: %w", err)
	}
	return recs, nil
}
