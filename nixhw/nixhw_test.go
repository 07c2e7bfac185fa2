package nixhw_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/nixhw"
)

// needNix fails (CI) or skips (elsewhere) when nix-instantiate is missing.
func needNix(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("MCINIT_E2E") != "" {
			t.Fatal("nix-instantiate not installed (Debian package nix-bin, in DEB_PACKAGES)")
		}
		t.Skip("nix-instantiate not installed (Debian package nix-bin)")
	}
}

// configs are the evaluators to test: the harness's own lib always, and
// nixpkgs' lib.evalModules when MCINIT_NIXPKGS names a nixpkgs checkout
// (its lib/ is enough), so the two module systems are held to the same
// answers.
func configs(t *testing.T) map[string]nixhw.Config {
	cs := map[string]nixhw.Config{"own-lib": {}}
	if d := os.Getenv("MCINIT_NIXPKGS"); d != "" {
		cs["nixpkgs-lib"] = nixhw.Config{Nixpkgs: d}
	}
	return cs
}

func TestFixtures(t *testing.T) {
	needNix(t)
	for _, c := range []struct {
		profile string
		want    nixhw.Facts
		unres   []string // options reported unresolved
	}{
		{
			// Literal lists, mkDefault, `++ lib.optional config.…`,
			// imports across directories, an option declared with a
			// default and read through config, a NixOS default
			// (enableRedistributableFirmware = false) read through config.
			profile: "acme/board-a",
			want: nixhw.Facts{
				InitrdKernelModules:    []string{"acme_gpu"},
				InitrdAvailableModules: []string{"nvme", "xhci_pci", "usb_storage"},
				KernelModules:          []string{"kvm-intel"},
				Blacklist:              []string{"ath3k"},
				KernelParams:           []string{"mem_sleep_default=deep"},
				KernelPackage:          "linuxPackages_latest",
				Firmware:               []string{"linux-firmware"},
			},
		},
		{
			// lib.mkForce false over an option's default, mkBefore and
			// mkAfter, a parent directory import, and a changed NixOS
			// default flipping a condition elsewhere.
			profile: "acme/board-a/variant",
			want: nixhw.Facts{
				InitrdAvailableModules:  []string{"nvme", "xhci_pci", "usb_storage"},
				KernelModules:           []string{"kvm-intel", "coretemp"},
				KernelParams:            []string{"acme.quirk=1", "mem_sleep_default=deep"},
				KernelPackage:           "linuxPackages_latest",
				Firmware:                []string{"linux-firmware"},
				RedistributableFirmware: true,
			},
		},
		{
			// mkMerge, priorities (mkDefault list loses to plain lists,
			// which concatenate; mkOverride 900 loses to a plain value),
			// a disabled mkIf, a device tree with overlays and filters.
			profile: "acme/board-b",
			want: nixhw.Facts{
				InitrdKernelModules:    []string{"i2c_rk3x", "rk808_regulator"},
				InitrdAvailableModules: []string{"sdhci_of_arasan"},
				KernelParams:           []string{"console=ttyS2,1500000"},
				DeviceTreeName:         "rockchip/rk3399-acme-b.dtb",
				DeviceTreeFilter:       "rk3399-acme-b*.dtb",
				Overlays:               []nixhw.Overlay{{Name: "acme-leds", Filter: "rk3399-acme-b.dtb"}},
			},
		},
		{
			// What needs packages built is unresolved, not guessed.
			profile: "acme/board-c",
			want:    nixhw.Facts{InitrdAvailableModules: []string{"ahci"}},
			unres:   []string{nixhw.OptKernelParams, nixhw.OptKernelPackages, nixhw.OptFirmware},
		},
		{profile: "acme/nothing"},
	} {
		for name, cfg := range configs(t) {
			t.Run(c.profile+"/"+name, func(t *testing.T) {
				f, err := nixhw.Evaluate(context.Background(), cfg, "testdata/hw", c.profile)
				if err != nil {
					t.Fatal(err)
				}
				var unres []string
				for _, u := range f.Unresolved {
					unres = append(unres, u.Option)
					if !strings.HasPrefix(u.String(), "unresolved: "+u.Option+" (") || strings.Contains(u.String(), "\n") {
						t.Errorf("report line %q", u)
					}
				}
				if !reflect.DeepEqual(unres, c.unres) {
					t.Errorf("unresolved %v, want %v (%v)", unres, c.unres, f.Unresolved)
				}
				f.Unresolved = nil
				if !reflect.DeepEqual(*f, c.want) {
					t.Errorf("facts\n got %+v\nwant %+v", *f, c.want)
				}
				if f.Empty() != (c.profile == "acme/nothing") {
					t.Errorf("Empty() = %v", f.Empty())
				}
			})
		}
	}
}

// TestUnresolvedReasons checks the report lines name the cause.
func TestUnresolvedReasons(t *testing.T) {
	needNix(t)
	f, err := nixhw.Evaluate(context.Background(), nixhw.Config{}, "testdata/hw", "acme/board-c")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		nixhw.OptKernelPackages: "unresolved: boot.kernelPackages (a package: pkgs.linuxPackagesFor(pkgs.callPackage(./kernel.nix)(…)))",
		nixhw.OptKernelParams:   "unresolved: boot.kernelParams (pkgs.linuxPackagesFor(pkgs.callPackage(./kernel.nix)(…)).kernel.version (a version of a package))",
		nixhw.OptFirmware:       "unresolved: hardware.firmware (a package: pkgs.callPackage(./firmware.nix)(…))",
	}
	for _, u := range f.Unresolved {
		if u.String() != want[u.Option] {
			t.Errorf("got  %s\nwant %s", u, want[u.Option])
		}
	}
}

// TestEvaluateErrors: bad profile paths and Nix errors the harness cannot
// catch (a missing attribute) end as errors or unresolved options, never
// as a crash.
func TestEvaluateErrors(t *testing.T) {
	needNix(t)
	ctx := context.Background()
	for _, p := range []string{"", "/etc", "../hw", "acme/none", "common"} {
		if _, err := nixhw.Evaluate(ctx, nixhw.Config{}, "testdata/hw", p); err == nil {
			t.Errorf("profile %q accepted", p)
		}
	}
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("missing/default.nix", `{ lib, ... }: { boot.kernelParams = [ lib.noSuchFunction ]; boot.kernelModules = [ "kvm" ]; }`)
	write("outside/default.nix", `{ ... }: { boot.kernelParams = [ (builtins.readFile "/etc/hostname") ]; }`)
	write("nixos/default.nix", `{ modulesPath, ... }: { imports = [ "${modulesPath}/profiles/base.nix" ]; }`)
	f, err := nixhw.Evaluate(ctx, nixhw.Config{}, dir, "missing")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Unresolved) != 1 || f.Unresolved[0].Option != nixhw.OptKernelParams ||
		!strings.Contains(f.Unresolved[0].Reason, "noSuchFunction") || !strings.Contains(f.Unresolved[0].Reason, "missing/default.nix:1") ||
		!reflect.DeepEqual(f.KernelModules, []string{"kvm"}) {
		t.Errorf("missing attribute: %+v", f)
	}
	// Restricted evaluation: a profile reads only its checkout.
	f, err = nixhw.Evaluate(ctx, nixhw.Config{}, dir, "outside")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Unresolved) != 1 || !strings.Contains(f.Unresolved[0].Reason, "forbidden") {
		t.Errorf("reading outside the checkout: %+v", f)
	}
	f, err = nixhw.Evaluate(ctx, nixhw.Config{}, dir, "nixos")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Unresolved) != len(nixhw.Options) || !strings.Contains(f.Unresolved[0].Reason, "mcinit-has-no-nixos-modules") {
		t.Errorf("NixOS module import: %+v", f)
	}
	if _, err := nixhw.Evaluate(ctx, nixhw.Config{NixInstantiate: "no-such-nix-instantiate"}, "testdata/hw", "acme/board-a"); err == nil || !strings.Contains(err.Error(), "nix-bin") {
		t.Errorf("missing evaluator: %v", err)
	}
}

func TestApply(t *testing.T) {
	b := &boards.Board{Name: "x", Arch: "arm64",
		Modules: []boards.Module{{Name: "dm-verity"}, {Name: "old", From: boards.FromInitrdKernelModules}, {Name: "nvme"}},
		Match:   []boards.Rule{{Compatible: []string{"v,x"}}}}
	prov := boards.Provenance{Source: "nixos-hardware", Commit: strings.Repeat("a", 40), Profile: "v/x"}
	f := &nixhw.Facts{
		InitrdKernelModules:    []string{"i2c_rk3x", "nvme"},
		InitrdAvailableModules: []string{"i2c-rk3x", "sdhci"},
		KernelModules:          []string{"kvm", "kvm"},
		KernelParams:           []string{"quiet"},
		Unresolved:             []nixhw.Unresolved{{Option: nixhw.OptBlacklist}},
	}
	b.Blacklist = []string{"kept"}
	nixhw.Apply(b, f, prov)
	var got []string
	for _, m := range b.Modules {
		got = append(got, m.Name+"<"+m.From)
	}
	want := "dm-verity< nvme<boot.initrd.kernelModules i2c_rk3x<boot.initrd.kernelModules sdhci<boot.initrd.availableKernelModules"
	if strings.Join(got, " ") != want {
		t.Errorf("modules %v", got)
	}
	if !reflect.DeepEqual(b.SystemModules, []string{"kvm"}) || !reflect.DeepEqual(b.Blacklist, []string{"kept"}) || b.Provenance != prov {
		t.Errorf("board %+v", b)
	}
	if _, err := boards.Parse("x.toml", boards.Format(b)); err != nil {
		t.Error(err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"boot.initrd.kernelModules":{"success":true,"value":"[\"a\"]"},"hardware.deviceTree.overlays":{"success":true,"value":"[{\"filter\":null,\"name\":\"x\"}]"},"boot.kernelPackages":{"success":false,"value":false}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		facts, err := nixhw.Decode(data)
		if err != nil {
			return
		}
		// Whatever decodes applies to a board without panicking, and
		// the board either parses or is refused with an error.
		b := &boards.Board{Name: "fuzz", Arch: "arm64", Match: []boards.Rule{{Compatible: []string{"v,b"}}}}
		nixhw.Apply(b, facts, boards.Provenance{})
		boards.Parse("fuzz.toml", boards.Format(b))
		if _, err := json.Marshal(facts); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRealCheckout (opt-in: MCINIT_NIXOS_HARDWARE=DIR, a nixos-hardware
// checkout) imports every profile the checkout's flake lists: none may
// crash the evaluator or make Evaluate fail; it reports how many gave
// something a board file can carry.
func TestRealCheckout(t *testing.T) {
	dir := os.Getenv("MCINIT_NIXOS_HARDWARE")
	if dir == "" {
		t.Skip("set MCINIT_NIXOS_HARDWARE to a nixos-hardware checkout")
	}
	needNix(t)
	profiles := listProfiles(t, dir)
	if len(profiles) < 50 {
		t.Fatalf("only %d profiles found in %s", len(profiles), dir)
	}
	var (
		mu                    sync.Mutex
		usable, empty, failed int
		unresolved            = map[string]int{}
		work                  = make(chan string)
		wg                    sync.WaitGroup
	)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				f, err := nixhw.Evaluate(context.Background(), nixhw.Config{Nixpkgs: os.Getenv("MCINIT_NIXPKGS")}, dir, p)
				mu.Lock()
				switch {
				case err != nil:
					failed++
					t.Errorf("%s: %v", p, err)
				case f.Empty():
					empty++
				default:
					usable++
				}
				if f != nil {
					for _, u := range f.Unresolved {
						unresolved[u.Option]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	for _, p := range profiles {
		work <- p
	}
	close(work)
	wg.Wait()
	t.Logf("%d profiles: %d gave a board file, %d had nothing usable, %d failed; unresolved options: %v",
		len(profiles), usable, empty, failed, unresolved)
}

// listProfiles reads the profile paths the checkout's flake.nix exposes
// (`name = import ./path;`), else every directory with a default.nix
// outside common/.
func listProfiles(t *testing.T, dir string) []string {
	var out []string
	if b, err := os.ReadFile(filepath.Join(dir, "flake.nix")); err == nil {
		seen := map[string]bool{}
		for _, m := range regexp.MustCompile(`import \./([A-Za-z0-9_./-]+)`).FindAllStringSubmatch(string(b), -1) {
			p := strings.TrimSuffix(m[1], "/")
			if !seen[p] && !strings.HasPrefix(p, "tests") {
				if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
					seen[p] = true
					out = append(out, p)
				}
			}
		}
	}
	if len(out) > 0 {
		sort.Strings(out)
		return out
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "default.nix" {
			rel, _ := filepath.Rel(dir, filepath.Dir(p))
			if rel != "." && !strings.HasPrefix(rel, "common") {
				out = append(out, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	return out
}

// TestShippedBoardsMatchProfiles (opt-in: MCINIT_NIXOS_HARDWARE=DIR)
// re-imports every shipped board that has provenance from the checkout:
// the re-import must change nothing, so each board's imported lists equal
// its profile's evaluated values. The checkout should be at the board's
// commit; a different commit is reported (profiles move).
func TestShippedBoardsMatchProfiles(t *testing.T) {
	dir := os.Getenv("MCINIT_NIXOS_HARDWARE")
	if dir == "" {
		t.Skip("set MCINIT_NIXOS_HARDWARE to a nixos-hardware checkout")
	}
	needNix(t)
	set, err := boards.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range set.Boards() {
		if !b.Provenance.Imported() {
			continue
		}
		n++
		f, err := nixhw.Evaluate(context.Background(), nixhw.Config{Nixpkgs: os.Getenv("MCINIT_NIXPKGS")}, dir, b.Provenance.Profile)
		if err != nil {
			t.Errorf("%s: %v", b.Name, err)
			continue
		}
		for _, u := range f.Unresolved {
			t.Logf("%s: %s", b.Name, u)
		}
		again := *b
		nixhw.Apply(&again, f, b.Provenance)
		if got, want := string(boards.Format(&again)), string(boards.Format(b)); got != want {
			t.Errorf("%s: re-importing %s changes the board:\n%s", b.Name, b.Provenance.Profile, got)
		}
		var imported []string
		for _, m := range b.Modules {
			if m.From != "" {
				imported = append(imported, m.Name)
			}
		}
		t.Logf("%s (%s): %d imported initrd modules %v, system %v, blacklist %v, params %v, device tree %+v",
			b.Name, b.Provenance.Profile, len(imported), imported, b.SystemModules, b.Blacklist, b.KernelParams, b.DeviceTree)
	}
	if n < 6 {
		t.Errorf("only %d shipped boards carry provenance, want the 6 imported ones", n)
	}
}

// TestRealCheckoutAgree (opt-in: MCINIT_NIXOS_HARDWARE=DIR and
// MCINIT_NIXPKGS=DIR) evaluates every profile with the harness's own lib
// and with nixpkgs' lib.evalModules: both must give the same values and
// leave the same options unresolved.
func TestRealCheckoutAgree(t *testing.T) {
	dir, np := os.Getenv("MCINIT_NIXOS_HARDWARE"), os.Getenv("MCINIT_NIXPKGS")
	if dir == "" || np == "" {
		t.Skip("set MCINIT_NIXOS_HARDWARE and MCINIT_NIXPKGS")
	}
	needNix(t)
	profiles := listProfiles(t, dir)
	var (
		mu         sync.Mutex
		same, diff int
		work       = make(chan string)
		wg         sync.WaitGroup
	)
	options := func(f *nixhw.Facts) []string {
		var o []string
		for _, u := range f.Unresolved {
			o = append(o, u.Option)
		}
		return o
	}
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				own, err1 := nixhw.Evaluate(context.Background(), nixhw.Config{}, dir, p)
				ref, err2 := nixhw.Evaluate(context.Background(), nixhw.Config{Nixpkgs: np}, dir, p)
				mu.Lock()
				switch {
				case err1 != nil || err2 != nil:
					t.Errorf("%s: %v / %v", p, err1, err2)
				case !reflect.DeepEqual(options(own), options(ref)):
					diff++
					t.Errorf("%s: unresolved\n own     %v\n nixpkgs %v", p, own.Unresolved, ref.Unresolved)
				default:
					uo, ur := own.Unresolved, ref.Unresolved
					own.Unresolved, ref.Unresolved = nil, nil
					if reflect.DeepEqual(own, ref) {
						same++
					} else {
						diff++
						t.Errorf("%s:\n own     %+v\n nixpkgs %+v", p, *own, *ref)
					}
					own.Unresolved, ref.Unresolved = uo, ur
				}
				mu.Unlock()
			}
		}()
	}
	for _, p := range profiles {
		work <- p
	}
	close(work)
	wg.Wait()
	t.Logf("%d profiles: %d agree, %d differ", len(profiles), same, diff)
}
