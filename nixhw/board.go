package nixhw

import (
	"fmt"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/kmodules"
)

// Apply writes the facts into a board: the imported module entries (those
// with From set) are replaced by the profile's initrd modules, and
// system_modules, blacklist, kernel_params, device_tree, recorded and
// provenance are replaced. Hand-written modules, match rules, quirks and
// notes stay. A profile module already listed by hand is not repeated.
// Unresolved options leave the board's current value, so a re-import never
// loses what it cannot evaluate.
func Apply(b *boards.Board, f *Facts, prov boards.Provenance) {
	unresolved := map[string]bool{}
	for _, u := range f.Unresolved {
		unresolved[u.Option] = true
	}
	var kept []boards.Module
	have := map[string]bool{}
	for _, m := range b.Modules {
		if m.From == "" || unresolved[m.From] {
			kept = append(kept, m)
			have[boards.NormalizeModule(m.Name)] = true
		}
	}
	add := func(names []string, from string) {
		if unresolved[from] {
			return
		}
		for _, n := range names {
			if k := boards.NormalizeModule(n); !have[k] {
				have[k] = true
				kept = append(kept, boards.Module{Name: n, From: from})
			}
		}
	}
	add(f.InitrdKernelModules, boards.FromInitrdKernelModules)
	add(f.InitrdAvailableModules, boards.FromInitrdAvailableModules)
	b.Modules = kept

	set := func(opt string, dst *[]string, v []string) {
		if !unresolved[opt] {
			*dst = dedupe(v)
		}
	}
	set(OptKernelModules, &b.SystemModules, f.KernelModules)
	set(OptBlacklist, &b.Blacklist, f.Blacklist)
	set(OptKernelParams, &b.KernelParams, f.KernelParams)
	if !unresolved[OptDeviceTreeName] {
		b.DeviceTree.Name = f.DeviceTreeName
	}
	if !unresolved[OptDeviceTreeFilter] {
		b.DeviceTree.Filter = f.DeviceTreeFilter
	}
	if !unresolved[OptDeviceTreeOverlays] {
		b.DeviceTree.Overlays = nil
		for _, o := range f.Overlays {
			b.DeviceTree.Overlays = append(b.DeviceTree.Overlays, boards.Overlay{Name: o.Name, Filter: o.Filter})
		}
	}
	if !unresolved[OptKernelPackages] {
		b.Recorded.KernelPackage = f.KernelPackage
	}
	set(OptFirmware, &b.Recorded.Firmware, f.Firmware)
	if !unresolved[OptRedistributable] {
		b.Recorded.RedistributableFirmware = f.RedistributableFirmware
	}
	b.Provenance = prov
}

// dedupe drops repeated entries (NixOS lists may repeat a value when two
// modules add it), keeping the first; nil for none.
func dedupe(l []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// CheckModules resolves the board's modules (loaded by /init) and system
// modules in the kernel module tree: each must exist or be built in, and
// no blacklisted module may be needed by them. The error names the first
// module that fails.
func CheckModules(b *boards.Board, tree *kmodules.Tree) error {
	var names []string
	for _, m := range b.Modules {
		names = append(names, m.Name)
	}
	deps, err := tree.Resolve(names)
	if err != nil {
		return fmt.Errorf("board %s: %w", b.Name, err)
	}
	if _, err := tree.Resolve(b.SystemModules); err != nil {
		return fmt.Errorf("board %s: system_modules: %w", b.Name, err)
	}
	black := map[string]bool{}
	for _, m := range b.Blacklist {
		black[boards.NormalizeModule(m)] = true
	}
	for _, d := range deps {
		if black[d.Name] {
			return fmt.Errorf("board %s: module %s is blacklisted but the board's modules need it", b.Name, d.Name)
		}
	}
	return nil
}
