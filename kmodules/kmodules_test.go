package kmodules_test

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/internal/testenv"
	"github.com/mcinit/mcinit/kmodules"
	"github.com/mcinit/mcinit/kmodules/modinfo"
)

// modRoot fetches (cached) a Debian kernel package and returns its
// lib/modules/<release> directory.
var modRoots sync.Map // "arch pkg" → module root, so the script runs once per package

func modRoot(t testing.TB, arch, pkg string) string {
	t.Helper()
	if r, ok := modRoots.Load(arch + " " + pkg); ok {
		return r.(string)
	}
	out, err := exec.Command("../scripts/debpkg.sh", arch, pkg).Output()
	if err != nil {
		t.Fatalf("scripts/debpkg.sh %s %s: %v", arch, pkg, err)
	}
	m, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "lib/modules/*"))
	if len(m) != 1 {
		t.Fatalf("%s: %d module roots", pkg, len(m))
	}
	modRoots.Store(arch+" "+pkg, m[0])
	return m[0]
}

// kernelsFor names the Debian kernel packages each shipped board is meant
// for: real hardware uses the full kernels, QEMU boards the cloud ones.
var kernelsFor = map[string][][2]string{
	"qemu-x86_64":                 {{"amd64", "linux-image-cloud-amd64"}, {"amd64", "linux-image-amd64"}},
	"qemu-aarch64-virt":           {{"arm64", "linux-image-cloud-arm64"}},
	"generic-x86_64":              {{"amd64", "linux-image-amd64"}},
	"generic-aarch64":             {{"arm64", "linux-image-arm64"}, {"arm64", "linux-image-cloud-arm64"}},
	"intel-nuc":                   {{"amd64", "linux-image-amd64"}},
	"intel-nuc-8i7beh":            {{"amd64", "linux-image-amd64"}},
	"lenovo-thinkpad-x1-11th-gen": {{"amd64", "linux-image-amd64"}},
	"lenovo-thinkpad-x1-carbon":   {{"amd64", "linux-image-amd64"}},
	"nxp-imx8mq-evk":              {{"arm64", "linux-image-arm64"}},
	"nxp-imx8mp-evk":              {{"arm64", "linux-image-arm64"}},
	"raspberrypi-4b":              {{"arm64", "linux-image-arm64"}},
	"pine64-pinebook-pro":         {{"arm64", "linux-image-arm64"}},
}

func names(ms []boards.Module) []string {
	var ns []string
	for _, m := range ms {
		ns = append(ns, m.Name)
	}
	return ns
}

// TestShippedBoardModulesExist resolves every shipped board's modules in
// the Debian kernel it is meant for: each must exist (or be built in).
func TestShippedBoardModulesExist(t *testing.T) {
	set, err := boards.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	trees := map[string]*kmodules.Tree{}
	for _, b := range set.Boards() {
		ks, ok := kernelsFor[b.Name]
		if !ok {
			t.Errorf("board %s: no Debian kernel to check its modules against (add it to kernelsFor)", b.Name)
			continue
		}
		for _, k := range ks {
			if k[0] != b.Arch {
				t.Errorf("board %s is %s but checked against %s", b.Name, b.Arch, k[1])
			}
			tr := trees[k[1]]
			if tr == nil {
				if tr, err = modinfo.Open(modRoot(t, k[0], k[1])); err != nil {
					t.Fatal(err)
				}
				trees[k[1]] = tr
			}
			paths, err := tr.Resolve(names(b.Modules))
			if err != nil {
				t.Errorf("board %s on %s: %v", b.Name, k[1], err)
				continue
			}
			if _, err := tr.Resolve(b.SystemModules); err != nil {
				t.Errorf("board %s on %s: system_modules: %v", b.Name, k[1], err)
			}
			t.Logf("board %s on %s: %d module files", b.Name, k[1], len(paths))
		}
	}
}

// depmodTree runs the real depmod over a module tree (through a symlink,
// so nothing is written into the cache) and returns the new module root.
func depmodTree(t *testing.T, root string) string {
	t.Helper()
	testenv.RequireTool(t, "depmod", "kmod")
	rel := filepath.Base(root)
	base := t.TempDir()
	dst := filepath.Join(base, "lib/modules", rel)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "kernel"), filepath.Join(dst, "kernel")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"modules.builtin", "modules.order", "modules.builtin.modinfo"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("depmod", "-b", base, rel).CombinedOutput(); err != nil {
		t.Fatalf("depmod: %v: %s", err, out)
	}
	return dst
}

// readDepmod parses a modules.dep into name → transitive dependency names.
func readDepmod(t *testing.T, root string) map[string][]string {
	f, err := os.Open(filepath.Join(root, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p, rest, _ := strings.Cut(sc.Text(), ":")
		var ds []string
		for _, d := range strings.Fields(rest) {
			ds = append(ds, modName(d))
		}
		m[modName(p)] = ds
	}
	return m
}

func modName(p string) string {
	return kmodules.Name(strings.TrimSuffix(filepath.Base(p), ".ko"))
}

// TestResolveAgainstDepmod: for every arm64 board, the closure computed
// from .modinfo (no modules.dep, as dpkg -x leaves it) and the one read
// from depmod's modules.dep are both exactly depmod's closure, in an order
// that loads every dependency first.
func TestResolveAgainstDepmod(t *testing.T) {
	full := modRoot(t, "arm64", "linux-image-arm64")
	withDep := depmodTree(t, full)
	depmod := readDepmod(t, withDep)
	set, err := boards.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range set.Boards() {
		if b.Arch != "arm64" || b.Name == "qemu-aarch64-virt" {
			continue
		}
		want := map[string]bool{}
		for _, n := range names(b.Modules) {
			n = kmodules.Name(n)
			if _, ok := depmod[n]; !ok {
				continue // built in
			}
			want[n] = true
			for _, d := range depmod[n] {
				want[d] = true
			}
		}
		// Without modules.dep the host reads .modinfo; with it, the
		// device-side reader alone resolves.
		for _, root := range []string{full, withDep} {
			resolve := modinfo.ResolveDeps
			if root == withDep {
				resolve = kmodules.ResolveDeps
			}
			deps, err := resolve(root, names(b.Modules))
			if err != nil {
				t.Fatalf("%s: %v", b.Name, err)
			}
			pos := map[string]int{}
			for i, d := range deps {
				pos[d.Name] = i
				if !want[d.Name] {
					t.Errorf("%s (%s): %s is not in depmod's closure", b.Name, root, d.Name)
				}
			}
			for n := range want {
				if _, ok := pos[n]; !ok {
					t.Errorf("%s (%s): %s missing from the closure", b.Name, root, n)
				}
				for _, d := range depmod[n] {
					if pos[d] > pos[n] {
						t.Errorf("%s (%s): %s ordered after %s, which needs it", b.Name, root, d, n)
					}
				}
			}
		}
	}
}

// TestWriteDepAgainstDepmod copies (symlinks) exactly a closure's module
// files into a fresh tree, as the initramfs builder does, and checks that
// WriteDep's modules.dep says what the real depmod says about that tree,
// and that the real modprobe resolves from depmod's version of it the same
// load order our reader gets from ours.
func TestWriteDepAgainstDepmod(t *testing.T) {
	testenv.RequireTool(t, "depmod", "kmod")
	root := modRoot(t, "arm64", "linux-image-cloud-arm64")
	want := []string{"tpm_tis", "dm-verity", "overlay", "virtio_blk"}
	deps, err := modinfo.ResolveDeps(root, want)
	if err != nil {
		t.Fatal(err)
	}
	var ours bytes.Buffer
	if err := kmodules.WriteDep(&ours, deps); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	rel := filepath.Base(root)
	dst := filepath.Join(base, "lib/modules", rel)
	for _, d := range deps {
		p := filepath.Join(dst, d.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(root, d.Path), p); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("depmod", "-b", base, rel).CombinedOutput(); err != nil {
		t.Fatalf("depmod: %v: %s", err, out)
	}
	theirs := readDepmod(t, dst)
	oursParsed := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(ours.String()), "\n") {
		p, rest, _ := strings.Cut(line, ":")
		var ds []string
		for _, d := range strings.Fields(rest) {
			ds = append(ds, modName(d))
		}
		oursParsed[modName(p)] = ds
	}
	if len(theirs) != len(oursParsed) {
		t.Errorf("depmod lists %d modules, we list %d", len(theirs), len(oursParsed))
	}
	for n, tds := range theirs {
		ods, ok := oursParsed[n]
		if !ok {
			t.Errorf("%s: in depmod's modules.dep, not in ours", n)
			continue
		}
		if strings.Join(sorted(tds), " ") != strings.Join(sorted(ods), " ") {
			t.Errorf("%s: depmod says %v, we say %v", n, tds, ods)
		}
		// kmod loads a line's dependencies from the last one back: each
		// must come after everything that needs it.
		pos := map[string]int{}
		for i, d := range ods {
			pos[d] = i
		}
		for _, d := range ods {
			for _, dd := range theirs[d] {
				if pos[dd] < pos[d] {
					t.Errorf("%s: our line lists %s before %s, which it needs", n, dd, d)
				}
			}
		}
	}
	if _, err := exec.LookPath("modprobe"); err == nil {
		out, err := exec.Command("modprobe", "-d", base, "-S", rel, "--show-depends", "dm-verity").CombinedOutput()
		if err != nil {
			t.Fatalf("modprobe --show-depends: %v: %s", err, out)
		}
		var order []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "insmod" {
				order = append(order, modName(f[1]))
			}
		}
		if len(order) != 5 || order[len(order)-1] != "dm_verity" {
			t.Errorf("modprobe's load order: %v", order)
		}
	}
	// Our own reader of the written file gives back the same closure.
	if err := os.WriteFile(filepath.Join(dst, "modules.dep"), ours.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := kmodules.Resolve(dst, want)
	if err != nil || strings.Join(again, " ") == "" || len(again) != len(deps) {
		t.Errorf("re-resolving from the written modules.dep: %v, %v", again, err)
	}
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func TestResolveBuiltinAndMissing(t *testing.T) {
	root := modRoot(t, "amd64", "linux-image-cloud-amd64")
	// ext4 is built into the cloud kernel: satisfied, nothing to copy.
	tr, err := modinfo.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := tr.Resolve([]string{"ext4", "virtio-blk"})
	ps := kmodules.Paths(ds)
	if err != nil || len(ps) == 0 || !strings.HasSuffix(ps[len(ps)-1], "virtio_blk.ko") || strings.Contains(strings.Join(ps, " "), "ext4") {
		t.Errorf("Resolve(ext4, virtio-blk) = %v, %v", ps, err)
	}
	if _, err := tr.Resolve([]string{"virtio_blk", "no_such_module"}); err == nil || !strings.Contains(err.Error(), "no_such_module") {
		t.Errorf("missing module: %v", err)
	}
	if err := kmodules.LoadWith(root, []boards.Module{{Name: "nope-nope"}}, func(string, string) error { return nil }); err == nil || !strings.Contains(err.Error(), "nope_nope") {
		t.Errorf("Load with a missing module: %v", err)
	}
	// The device side reads no .modinfo: a root without modules.dep
	// cannot resolve a module that is present, and says why.
	if _, err := kmodules.Resolve(root, []string{"virtio_blk"}); err == nil || !strings.Contains(err.Error(), "module virtio_blk: no modules.dep") {
		t.Errorf("device-side resolve without modules.dep: %v", err)
	}
}

// TestCompressedModules reads .modinfo and the module from xz, zstd and
// gzip copies of a real module, made with the real compressors.
func TestCompressedModules(t *testing.T) {
	root := modRoot(t, "arm64", "linux-image-cloud-arm64")
	src := filepath.Join(root, "kernel/drivers/md/dm-verity.ko")
	dir := t.TempDir()
	for _, c := range [][]string{{"xz", "-k", "--check=crc32"}, {"zstd", "-q", "-k"}, {"gzip", "-k"}} {
		if _, err := exec.LookPath(c[0]); err != nil {
			t.Fatalf("%s not installed", c[0])
		}
	}
	mod := filepath.Join(dir, "kernel/drivers/md/dm-verity.ko")
	if err := os.MkdirAll(filepath.Dir(mod), 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(src)
	for _, c := range [][]string{{"xz", "-k", "--check=crc32"}, {"zstd", "-q", "-k"}, {"gzip", "-k"}} {
		if err := os.WriteFile(mod, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(c[0], append(c[1:], mod)...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", c[0], err, out)
		}
	}
	os.Remove(mod)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		info, err := modinfo.Read(mod + ext)
		if err != nil || info["depends"] != "dm-bufio,dm-mod,reed_solomon" && !strings.Contains(info["depends"], "dm-bufio") {
			t.Errorf("%s: depends=%q, %v", ext, info["depends"], err)
		}
		// What the initramfs builder stores: the original module, at the
		// plain .ko path.
		if img, err := modinfo.ReadModule(mod + ext); err != nil || !bytes.Equal(img, b) {
			t.Errorf("%s: decompressed module differs from the original (%d vs %d bytes), %v", ext, len(img), len(b), err)
		}
		if p := modinfo.PlainPath(mod + ext); p != mod {
			t.Errorf("PlainPath(%s) = %s", mod+ext, p)
		}
	}
	// Only one variant may be indexed; resolution follows its .modinfo
	// into deps that are absent here.
	os.Remove(mod + ".gz")
	os.Remove(mod + ".zst")
	if _, err := modinfo.ResolveDeps(dir, []string{"dm_verity"}); err == nil || !strings.Contains(err.Error(), "needed by dm_verity") {
		t.Errorf("compressed module with absent deps: %v", err)
	}
}

// TestLoadOrderAndParallelism drives Load's scheduler with a loader that
// takes time, over a real closure: every module starts only after the
// modules depmod says it needs have finished, parameters reach only the
// listed modules, and independent modules overlap.
func TestLoadOrderAndParallelism(t *testing.T) {
	root := depmodTree(t, modRoot(t, "arm64", "linux-image-cloud-arm64")) // as in an image: with modules.dep
	mods := []boards.Module{{Name: "tpm_tis", Params: "interrupts=0"}, {Name: "virtio_mmio"}, {Name: "virtio_pci"},
		{Name: "virtio_blk"}, {Name: "dm-mod"}, {Name: "dm-verity"}, {Name: "overlay"}}
	deps, err := kmodules.ResolveDeps(root, names(mods))
	if err != nil {
		t.Fatal(err)
	}
	needs := map[string][]string{}
	for _, d := range deps {
		needs[d.Name] = d.Deps
	}
	var (
		mu              sync.Mutex
		finished        = map[string]bool{}
		running, maxRun int
		params          = map[string]string{}
	)
	load := func(path, p string) error {
		n := modName(strings.TrimPrefix(path, root))
		mu.Lock()
		for _, d := range needs[n] {
			if !finished[d] {
				t.Errorf("%s started before %s finished", n, d)
			}
		}
		params[n] = p
		running++
		maxRun = max(maxRun, running)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		running--
		finished[n] = true
		mu.Unlock()
		return nil
	}
	if err := kmodules.LoadWith(root, mods, load); err != nil {
		t.Fatal(err)
	}
	if len(finished) != len(deps) {
		t.Errorf("loaded %d modules, want %d", len(finished), len(deps))
	}
	if params["tpm_tis"] != "interrupts=0" || params["tpm_tis_core"] != "" {
		t.Errorf("params: %v", params)
	}
	if maxRun < 2 {
		t.Errorf("no two modules loaded at once (max %d)", maxRun)
	}

	// A failing module stops its dependents and is named; others still load.
	var loaded []string
	err = kmodules.LoadWith(root, mods, func(path, _ string) error {
		n := modName(strings.TrimPrefix(path, root))
		if n == "dm_mod" {
			return errors.New("no memory")
		}
		mu.Lock()
		loaded = append(loaded, n)
		mu.Unlock()
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "module dm_mod: no memory") || !strings.Contains(err.Error(), "dependency: dm_bufio, dm_verity") {
		t.Errorf("failing module: %v", err)
	}
	for _, n := range loaded {
		if n == "dm_verity" || n == "dm_bufio" {
			t.Errorf("%s loaded although dm_mod failed", n)
		}
	}
	if len(loaded) < 5 {
		t.Errorf("independent modules not loaded: %v", loaded)
	}
}

// An image whose board modules are all built in holds only modules.builtin
// and an empty modules.dep: Load succeeds without inserting anything, and
// a module that is neither built in nor shipped is still an error naming it.
func TestLoadBuiltinOnly(t *testing.T) {
	root := t.TempDir()
	for name, data := range map[string]string{
		"modules.builtin": "kernel/drivers/block/virtio_blk.ko\nkernel/drivers/md/dm-mod.ko\n",
		"modules.dep":     "",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	insert := func(path, params string) error {
		t.Errorf("inserted %s: every module is built in", path)
		return nil
	}
	if err := kmodules.LoadWith(root, []boards.Module{{Name: "virtio_blk"}, {Name: "dm_mod"}}, insert); err != nil {
		t.Fatalf("built-in modules: %v", err)
	}
	err := kmodules.LoadWith(root, []boards.Module{{Name: "erofs"}}, insert)
	if err == nil || !strings.Contains(err.Error(), "erofs") {
		t.Errorf("a module neither built in nor shipped: err %v, want one naming erofs", err)
	}
}
