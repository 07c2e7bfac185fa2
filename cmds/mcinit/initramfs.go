//go:build !mcinit_device

package main

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/initramfs"
	"github.com/mcinit/mcinit/kmodules"
	"github.com/mcinit/mcinit/kmodules/modinfo"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/signing"
)

func init() {
	register("initramfs", "build the initramfs image for one or more boards", runInitramfs)
}

func runInitramfs(args []string) error {
	fl := flag.NewFlagSet("initramfs", flag.ContinueOnError)
	arch := fl.String("arch", "amd64", "target architecture: amd64 or arm64")
	out := fl.String("o", "", "output file (LZ4-compressed newc cpio, legacy frame)")
	policyPath := fl.String("policy", "", "signed policy `FILE`")
	sigPath := fl.String("sig", "", "detached signature file (default: POLICY.sig)")
	keysDir := fl.String("keys", "keys", "trusted key set `DIR` (*.pem and keyset.toml)")
	grantsDir := fl.String("grants", "", "development grants `DIR` to embed (*.toml with .sig)")
	boardsDir := fl.String("boards-dir", "", "board definitions `DIR` (default: the shipped boards)")
	boardList := fl.String("boards", "", "comma-separated boards to support (default: the policy's boards for -arch)")
	kernel := fl.String("kernel", "", "kernel module tree: lib/modules/RELEASE, or an unpacked kernel package")
	rescue := fl.String("rescue", "auto", "rescue shell commands: auto (when the policy allows development), yes, no")
	deviceDir := fl.String("device", os.Getenv("MCINIT_DEVICE"), "device payload `DIR` holding ARCH/init.cpio and ARCH/init-rescue.cpio (default: device/ beside this program when current, else the cache, built from the source tree on first use)")
	if err := fl.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *out == "" || *policyPath == "" || *kernel == "" {
		return usagef("need -o, -policy and -kernel")
	}
	if *sigPath == "" {
		*sigPath = *policyPath + ".sig"
	}

	raw, err := polReadFile(*policyPath, policy.MaxPolicySize)
	if err != nil {
		return err
	}
	sig, err := polReadFile(*sigPath, signing.MaxSignatureFile)
	if err != nil {
		return err
	}
	ks, err := signing.LoadKeySetDir(*keysDir)
	if err != nil {
		return err
	}
	// Never build an image whose policy would be refused at boot.
	v, err := policy.VerifyPolicy(raw, sig, ks)
	if err != nil {
		return rejected(fmt.Errorf("policy %s: %w", *policyPath, err))
	}

	withRescue := v.Policy.Development.Allowed()
	switch *rescue {
	case "auto":
	case "yes":
		// An image whose policy never allows development carries no shell
		// at all (issue 10): nothing could ever use it legitimately.
		if !v.Policy.Development.Allowed() {
			return usagef("-rescue yes: the policy never allows development, so the image gets no shell")
		}
		withRescue = true
	case "no":
		withRescue = false
	default:
		return usagef("-rescue must be auto, yes or no")
	}

	var set *boards.Set
	var boardFS fs.FS
	if *boardsDir != "" {
		boardFS = os.DirFS(*boardsDir)
		set, err = boards.Load(boardFS)
	} else {
		boardFS = boards.ShippedFS()
		set, err = boards.Shipped()
	}
	if err != nil {
		return err
	}
	selected, err := selectBoards(set, v.Policy, *boardList, *arch)
	if err != nil {
		return err
	}

	modRoot, release, err := findModuleRoot(*kernel)
	if err != nil {
		return err
	}
	// A policy that never allows development gets no development-only
	// modules (overlayfs): they could not be loaded anyway.
	devAllowed := v.Policy.Development.Allowed()
	var names []string
	for _, b := range selected {
		for _, m := range b.Modules {
			if m.Profile == "development" && !devAllowed {
				continue
			}
			names = append(names, m.Name)
		}
	}
	deps, err := modinfo.ResolveDeps(modRoot, names)
	if err != nil {
		return err
	}
	modFiles, err := moduleFiles(modRoot, deps)
	if err != nil {
		return err
	}
	var dep bytes.Buffer
	if err := kmodules.WriteDep(&dep, deps); err != nil {
		return err
	}

	files := []initramfs.File{
		{Path: initramfs.PolicyFile, Data: raw, Mode: 0o444},
		{Path: initramfs.SigFile, Data: sig, Mode: 0o444},
	}
	keyFiles, err := dirFiles(*keysDir, initramfs.KeysDir, func(n string) bool {
		return strings.HasSuffix(n, ".pem") || n == "keyset.toml"
	})
	if err != nil {
		return err
	}
	files = append(files, keyFiles...)
	for _, b := range selected {
		data, err := fs.ReadFile(boardFS, b.Name+".toml")
		if err != nil {
			return fmt.Errorf("board %s: %w", b.Name, err)
		}
		files = append(files, initramfs.File{Path: path.Join(initramfs.BoardsDir, b.Name+".toml"), Data: data, Mode: 0o444})
	}
	if *grantsDir != "" {
		g, err := dirFiles(*grantsDir, initramfs.GrantsDir, func(n string) bool {
			return strings.HasSuffix(n, ".toml") || strings.HasSuffix(n, ".toml.sig")
		})
		if err != nil {
			return err
		}
		files = append(files, g...)
	}

	payload, from, err := devicePayload(*arch, withRescue, *deviceDir)
	if err != nil {
		return err
	}
	tmp := *out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = initramfs.Build(initramfs.Spec{
		Arch:          *arch,
		Files:         files,
		Rescue:        withRescue,
		ModuleRoot:    modRoot,
		KernelRelease: release,
		ModuleFiles:   modFiles,
		ModulesDep:    dep.Bytes(),
		Device:        payload,
	}, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	names = names[:0]
	for _, b := range selected {
		names = append(names, b.Name)
	}
	fmt.Printf("initramfs %s: arch %s, boards %s, kernel %s, %d modules, rescue shell %v, policy version %d, device payload %s\n",
		*out, *arch, strings.Join(names, ","), release, len(modFiles), withRescue, v.Policy.Version, from)
	return nil
}

// selectBoards picks the named boards, or the policy's boards for arch
// (plus the arch's generic board when the policy allows unknown boards).
func selectBoards(set *boards.Set, pol *policy.Policy, list, arch string) ([]*boards.Board, error) {
	var names []string
	if list != "" {
		names = strings.Split(list, ",")
	} else {
		names = append(names, pol.Boards...)
		if pol.AllowUnknownBoards {
			names = append(names, boards.GenericName(arch))
		}
	}
	var out []*boards.Board
	for _, n := range names {
		b, ok := set.Get(strings.TrimSpace(n))
		if !ok {
			if list != "" {
				return nil, fmt.Errorf("board %q: no such board definition", n)
			}
			continue
		}
		if b.Arch == arch {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no board for arch %s among %s", arch, strings.Join(names, ","))
	}
	return out, nil
}

// moduleFiles reads the closure's module files for the image, each
// uncompressed (/init then needs no decompressor, and the kernel none of
// its own): a .ko.xz/.ko.zst/.ko.gz is stored as .ko, and deps' paths are
// changed to match, for the modules.dep written from them.
func moduleFiles(modRoot string, deps []kmodules.Dep) ([]initramfs.File, error) {
	files := make([]initramfs.File, len(deps))
	for i, d := range deps {
		data, err := modinfo.ReadModule(filepath.Join(modRoot, filepath.FromSlash(d.Path)))
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", d.Name, err)
		}
		deps[i].Path = modinfo.PlainPath(d.Path)
		files[i] = initramfs.File{Path: deps[i].Path, Data: data, Mode: 0o644}
	}
	return files, nil
}

// findModuleRoot accepts lib/modules/RELEASE itself or a tree holding one
// (an unpacked kernel package).
func findModuleRoot(dir string) (root, release string, err error) {
	if _, err := os.Stat(filepath.Join(dir, "kernel")); err == nil {
		return dir, filepath.Base(dir), nil
	}
	for _, base := range []string{filepath.Join(dir, "lib", "modules"), filepath.Join(dir, "usr", "lib", "modules")} {
		ents, err := os.ReadDir(base)
		if err != nil {
			continue
		}
		if len(ents) != 1 {
			return "", "", fmt.Errorf("%s: %d kernel releases, name one with -kernel %s/RELEASE", base, len(ents), base)
		}
		return filepath.Join(base, ents[0].Name()), ents[0].Name(), nil
	}
	return "", "", fmt.Errorf("%s: no kernel module tree (want lib/modules/RELEASE)", dir)
}

// dirFiles reads the matching regular files of dir into image files under
// dst, in name order.
func dirFiles(dir, dst string, keep func(string) bool) ([]initramfs.File, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []initramfs.File
	for _, e := range ents {
		if !e.Type().IsRegular() || !keep(e.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, initramfs.File{Path: path.Join(dst, e.Name()), Data: data, Mode: 0o444})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}
