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
// notes stay. A module listed by hand that the profile lists too becomes
// an imported entry in its place (keeping its parameters).
// Unresolved options leave the board's current value, so a re-import never
// loses what it cannot evaluate.
func Apply(b *boards.Board, f *Facts, prov boards.Provenance) {
	unresolved := map[string]bool{}
	for _, u := range f.Unresolved {
		unresolved[u.Option] = true
	}
	// Profile modules by normalized name, first option first.
	from := map[string]string{}
	var order []boards.Module
	for _, l := range []struct {
		opt   string
		names []string
	}{{OptInitrdKernelModules, f.InitrdKernelModules}, {OptInitrdAvailableModules, f.InitrdAvailableModules}} {
		if unresolved[l.opt] {
			continue
		}
		for _, n := range l.names {
			if k := boards.NormalizeModule(n); from[k] == "" {
				from[k] = l.opt
				order = append(order, boards.Module{Name: n, From: l.opt})
			}
		}
	}
	var kept []boards.Module
	for _, m := range b.Modules {
		switch k := boards.NormalizeModule(m.Name); {
		case from[k] != "":
			// Listed by the profile too: it becomes imported, keeping
			// its place, parameters and profile.
			m.From = from[k]
			kept = append(kept, m)
			delete(from, k)
		case m.From == "" || unresolved[m.From]:
			kept = append(kept, m)
		}
	}
	for _, m := range order {
		if from[boards.NormalizeModule(m.Name)] != "" {
			kept = append(kept, m)
		}
	}
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
