// Package nixhw evaluates a nixos-hardware profile into the facts mcinit's
// board files carry: modules by stage, blacklisted modules, kernel
// parameters, the device tree, firmware and the kernel package.
//
// It runs Debian's nix-instantiate (a real Nix evaluator) on a small
// harness shipped inside mcinit (harness.nix), which stands in for the
// NixOS module system as far as these options need: imports, option
// declarations with defaults, mkIf/mkMerge/mkOverride/mkOrder with NixOS's
// priorities, and pkgs as a lazy stub. With a nixpkgs checkout, nixpkgs'
// own lib.evalModules does the merging instead. What cannot be known
// without building packages (a kernel version, a package built by a
// function) is reported as unresolved, never guessed.
package nixhw

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

//go:embed harness.nix
var harness []byte

// Options the harness reports, in a fixed order.
const (
	OptInitrdKernelModules    = "boot.initrd.kernelModules"
	OptInitrdAvailableModules = "boot.initrd.availableKernelModules"
	OptKernelModules          = "boot.kernelModules"
	OptBlacklist              = "boot.blacklistedKernelModules"
	OptKernelParams           = "boot.kernelParams"
	OptKernelPackages         = "boot.kernelPackages"
	OptDeviceTreeName         = "hardware.deviceTree.name"
	OptDeviceTreeFilter       = "hardware.deviceTree.filter"
	OptDeviceTreeOverlays     = "hardware.deviceTree.overlays"
	OptFirmware               = "hardware.firmware"
	OptRedistributable        = "hardware.enableRedistributableFirmware"
)

// Options lists every option the harness evaluates.
var Options = []string{
	OptInitrdKernelModules, OptInitrdAvailableModules, OptKernelModules, OptBlacklist,
	OptKernelParams, OptKernelPackages, OptDeviceTreeName, OptDeviceTreeFilter,
	OptDeviceTreeOverlays, OptFirmware, OptRedistributable,
}

// Limits on what a profile may produce.
const (
	maxOutput  = 4 << 20 // bytes of nix-instantiate output
	maxEntries = 1024    // entries of one list
	maxString  = 4096    // bytes of one string
)

// Facts are a profile's evaluated values. Lists are nil when the profile
// gives none or the option is unresolved.
type Facts struct {
	InitrdKernelModules     []string // boot.initrd.kernelModules
	InitrdAvailableModules  []string // boot.initrd.availableKernelModules
	KernelModules           []string // boot.kernelModules
	Blacklist               []string // boot.blacklistedKernelModules
	KernelParams            []string // boot.kernelParams
	KernelPackage           string   // nixpkgs attribute of boot.kernelPackages; "" when the profile sets none
	DeviceTreeName          string
	DeviceTreeFilter        string
	Overlays                []Overlay
	Firmware                []string // nixpkgs attributes of hardware.firmware
	RedistributableFirmware bool

	// Unresolved lists the options the harness could not evaluate, in
	// Options order.
	Unresolved []Unresolved
}

// Overlay is one entry of hardware.deviceTree.overlays.
type Overlay struct {
	Name   string `json:"name"`
	Filter string `json:"filter"`
}

// Unresolved is an option the harness could not evaluate, and why.
type Unresolved struct {
	Option string
	Reason string
}

// String is the one-line report form, e.g.
// "unresolved: boot.kernelPackages (a package: pkgs.linuxPackagesFor(…))".
func (u Unresolved) String() string {
	r := u.Reason
	if rest, ok := strings.CutPrefix(r, u.Option+" ("); ok && strings.HasSuffix(rest, ")") {
		return "unresolved: " + u.Option + " (" + strings.TrimSuffix(rest, ")") + ")"
	}
	return "unresolved: " + u.Option + " (" + r + ")"
}

// Empty says whether the profile gave nothing mcinit uses or records.
func (f *Facts) Empty() bool {
	return len(f.InitrdKernelModules)+len(f.InitrdAvailableModules)+len(f.KernelModules)+
		len(f.Blacklist)+len(f.KernelParams)+len(f.Overlays)+len(f.Firmware) == 0 &&
		f.KernelPackage == "" && f.DeviceTreeName == "" && f.DeviceTreeFilter == "" &&
		!f.RedistributableFirmware
}

// Config says how to run the evaluator.
type Config struct {
	// NixInstantiate is the evaluator; "" means nix-instantiate on PATH.
	NixInstantiate string
	// Nixpkgs is a nixpkgs checkout whose lib replaces the harness's own.
	Nixpkgs string
	// Timeout bounds each evaluator run; 0 means two minutes.
	Timeout time.Duration
}

// Evaluate evaluates the profile (a path relative to the nixos-hardware
// checkout dir: a directory with default.nix, or a .nix file).
func Evaluate(ctx context.Context, cfg Config, dir, profile string) (*Facts, error) {
	abs, err := profilePath(dir, profile)
	if err != nil {
		return nil, err
	}
	r, err := newRunner(cfg, dir)
	if err != nil {
		return nil, err
	}
	defer r.close()
	out, runErr := r.run(ctx, abs, "")
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	values := map[string]json.RawMessage{}
	failed := map[string]bool{}
	if runErr == nil {
		res, err := decodeResult(out)
		if err != nil {
			return nil, fmt.Errorf("nixos-hardware %s: harness output: %w", profile, err)
		}
		for _, o := range Options {
			if v, ok := res[o]; ok {
				values[o] = v
			} else {
				failed[o] = true
			}
		}
	} else {
		// An error tryEval cannot catch (a missing attribute, a type
		// error) stopped the whole run: evaluate the options one by one.
		for _, o := range Options {
			failed[o] = true
		}
	}
	f := &Facts{}
	for _, o := range Options {
		if !failed[o] {
			continue
		}
		// Re-run the option alone without catching, so nix-instantiate
		// says why it fails (or gives its value, when it was another
		// option that stopped the run).
		out, err := r.run(ctx, abs, o)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			f.Unresolved = append(f.Unresolved, Unresolved{Option: o, Reason: reason(err, dir, cfg.Nixpkgs)})
			continue
		}
		var s string
		if err := json.Unmarshal(out, &s); err != nil {
			return nil, fmt.Errorf("nixos-hardware %s: %s: harness output: %v", profile, o, err)
		}
		values[o] = json.RawMessage(s)
	}
	if err := f.set(values); err != nil {
		return nil, fmt.Errorf("nixos-hardware %s: %w", profile, err)
	}
	return f, nil
}

// profilePath checks that profile names a file or directory inside dir.
func profilePath(dir, profile string) (string, error) {
	clean := filepath.ToSlash(filepath.Clean(profile))
	if profile == "" || filepath.IsAbs(profile) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("profile %q: must be a path inside the nixos-hardware checkout", profile)
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	abs := filepath.Join(root, filepath.FromSlash(clean))
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("profile %q: %w", profile, err)
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(abs, "default.nix")); err != nil {
			return "", fmt.Errorf("profile %q: a directory without default.nix", profile)
		}
	}
	return abs, nil
}

// runner runs nix-instantiate in a private, throw-away state: no Nix store
// (--store dummy:// evaluates without one; nothing can be built or
// fetched), no daemon, state and configuration in a temporary directory,
// and restricted evaluation, so a profile reads only the checkout, the
// harness and nixpkgs.
type runner struct {
	nix, tmp, harness string
	allowed           []string
	nixpkgs           string
	timeout           time.Duration
}

func newRunner(cfg Config, dir string) (*runner, error) {
	nix := cfg.NixInstantiate
	if nix == "" {
		nix = "nix-instantiate"
	}
	p, err := exec.LookPath(nix)
	if err != nil {
		return nil, fmt.Errorf("%s not found (Debian package nix-bin): %w", nix, err)
	}
	tmp, err := os.MkdirTemp("", "mcinit-nixhw-")
	if err != nil {
		return nil, err
	}
	r := &runner{nix: p, tmp: tmp, harness: filepath.Join(tmp, "harness", "harness.nix"), timeout: cfg.Timeout}
	if r.timeout == 0 {
		r.timeout = 2 * time.Minute
	}
	if err := os.MkdirAll(filepath.Dir(r.harness), 0o755); err != nil {
		r.close()
		return nil, err
	}
	if err := os.WriteFile(r.harness, harness, 0o644); err != nil {
		r.close()
		return nil, err
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		r.close()
		return nil, err
	}
	r.allowed = []string{filepath.Dir(r.harness), root}
	if cfg.Nixpkgs != "" {
		if r.nixpkgs, err = filepath.Abs(cfg.Nixpkgs); err != nil {
			r.close()
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(r.nixpkgs, "lib", "default.nix")); err != nil {
			r.close()
			return nil, fmt.Errorf("-nixpkgs %s: no lib/default.nix: %w", cfg.Nixpkgs, err)
		}
		r.allowed = append(r.allowed, r.nixpkgs)
	}
	return r, nil
}

func (r *runner) close() { os.RemoveAll(r.tmp) }

// evalError is a failed evaluator run with its diagnostics.
type evalError struct {
	err    error
	stderr string
}

func (e *evalError) Error() string { return e.err.Error() + ": " + e.stderr }

func (r *runner) run(ctx context.Context, profile, only string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	args := []string{"--eval", "--strict", "--json",
		"--store", "dummy://",
		"--option", "build-users-group", "",
		"--option", "restrict-eval", "true",
		"--option", "allow-import-from-derivation", "false",
	}
	for i, a := range r.allowed {
		args = append(args, "-I", fmt.Sprintf("mcinit%d=%s", i, a))
	}
	args = append(args, r.harness, "--argstr", "profile", profile)
	if r.nixpkgs != "" {
		args = append(args, "--argstr", "nixpkgs", r.nixpkgs)
	}
	if only != "" {
		args = append(args, "--argstr", "only", only)
	}
	cmd := exec.CommandContext(ctx, r.nix, args...)
	home := filepath.Join(r.tmp, "home")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"NIX_STATE_DIR=" + filepath.Join(r.tmp, "state"),
		"NIX_LOG_DIR=" + filepath.Join(r.tmp, "log"),
		"NIX_CONF_DIR=" + filepath.Join(r.tmp, "conf"),
		"NIX_USER_CONF_FILES=",
		"XDG_CACHE_HOME=" + filepath.Join(home, "cache"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"XDG_DATA_HOME=" + filepath.Join(home, "data"),
		"NIX_PATH=",
	}
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxOutput, 64<<10
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, &evalError{err: fmt.Errorf("%s: timed out after %v", filepath.Base(r.nix), r.timeout)}
	}
	if stdout.over {
		return nil, &evalError{err: fmt.Errorf("output larger than %d bytes", maxOutput)}
	}
	if err != nil {
		return nil, &evalError{err: err, stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}

type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		b.over = true
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// reason turns nix-instantiate's diagnostics into one line: the harness's
// own "mcinit-unresolved:" message, or Nix's error with the file and line
// (relative to the checkout) it points at.
func reason(err error, dir, nixpkgs string) string {
	var ee *evalError
	if !errors.As(err, &ee) || ee.stderr == "" {
		return strings.ReplaceAll(err.Error(), "\n", " ")
	}
	var msg, at string
	for _, l := range strings.Split(ee.stderr, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case msg == "" && strings.HasPrefix(l, "error:"):
			msg = strings.TrimSpace(strings.TrimPrefix(l, "error:"))
			if m, ok := strings.CutPrefix(msg, "mcinit-unresolved: "); ok {
				return m
			}
		case msg != "" && at == "" && strings.HasPrefix(l, "at "):
			at = strings.TrimSuffix(strings.TrimPrefix(l, "at "), ":")
		}
	}
	if msg == "" {
		return "nix-instantiate failed: " + strings.ReplaceAll(strings.TrimSpace(ee.stderr), "\n", " ")
	}
	if root, err := filepath.Abs(dir); err == nil {
		at = strings.TrimPrefix(at, root+"/")
	}
	if nixpkgs != "" {
		if root, err := filepath.Abs(nixpkgs); err == nil {
			at = strings.Replace(at, root+"/", "nixpkgs/", 1)
		}
	}
	if at != "" {
		return "nix: " + msg + ", at " + at
	}
	return "nix: " + msg
}

// decodeResult reads the harness's result: for each option,
// {"success": bool, "value": "<JSON text>"}.
func decodeResult(out []byte) (map[string]json.RawMessage, error) {
	var res map[string]struct {
		Success bool            `json:"success"`
		Value   json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, err
	}
	values := map[string]json.RawMessage{}
	for k, v := range res {
		if !v.Success {
			continue
		}
		var s string
		if err := json.Unmarshal(v.Value, &s); err != nil {
			return nil, fmt.Errorf("%s: value is not JSON text: %v", k, err)
		}
		values[k] = json.RawMessage(s)
	}
	return values, nil
}

// Decode reads a harness result (the output of a run without `only`) into
// facts; options that failed are left for Evaluate to explain. It is
// exported for fuzzing and tests.
func Decode(out []byte) (*Facts, error) {
	values, err := decodeResult(out)
	if err != nil {
		return nil, err
	}
	f := &Facts{}
	return f, f.set(values)
}

// set fills the facts from each option's JSON value, checking shapes.
func (f *Facts) set(values map[string]json.RawMessage) error {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := values[k]
		var err error
		switch k {
		case OptInitrdKernelModules:
			f.InitrdKernelModules, err = stringList(v)
		case OptInitrdAvailableModules:
			f.InitrdAvailableModules, err = stringList(v)
		case OptKernelModules:
			f.KernelModules, err = stringList(v)
		case OptBlacklist:
			f.Blacklist, err = stringList(v)
		case OptKernelParams:
			f.KernelParams, err = stringList(v)
		case OptKernelPackages:
			f.KernelPackage, err = optString(v)
		case OptDeviceTreeName:
			f.DeviceTreeName, err = optString(v)
		case OptDeviceTreeFilter:
			f.DeviceTreeFilter, err = optString(v)
		case OptDeviceTreeOverlays:
			f.Overlays, err = overlays(v)
		case OptFirmware:
			f.Firmware, err = stringList(v)
		case OptRedistributable:
			err = strictUnmarshal(v, &f.RedistributableFirmware)
		default:
			err = errors.New("not an option the harness evaluates")
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

func strictUnmarshal(v json.RawMessage, into any) error {
	d := json.NewDecoder(bytes.NewReader(v))
	d.DisallowUnknownFields()
	if err := d.Decode(into); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

func stringList(v json.RawMessage) ([]string, error) {
	var l []string
	if err := strictUnmarshal(v, &l); err != nil {
		return nil, err
	}
	if len(l) > maxEntries {
		return nil, fmt.Errorf("%d entries is more than %d", len(l), maxEntries)
	}
	for _, s := range l {
		if err := checkString(s); err != nil {
			return nil, err
		}
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

func optString(v json.RawMessage) (string, error) {
	var s *string
	if err := strictUnmarshal(v, &s); err != nil {
		return "", err
	}
	if s == nil {
		return "", nil
	}
	if *s == "" {
		return "", errors.New("empty string")
	}
	return *s, checkString(*s)
}

func overlays(v json.RawMessage) ([]Overlay, error) {
	var raw []struct {
		Name   string  `json:"name"`
		Filter *string `json:"filter"`
	}
	if err := strictUnmarshal(v, &raw); err != nil {
		return nil, err
	}
	if len(raw) > maxEntries {
		return nil, fmt.Errorf("%d entries is more than %d", len(raw), maxEntries)
	}
	var out []Overlay
	for _, o := range raw {
		if err := checkString(o.Name); err != nil {
			return nil, err
		}
		ov := Overlay{Name: o.Name}
		if o.Filter != nil {
			if err := checkString(*o.Filter); err != nil {
				return nil, err
			}
			ov.Filter = *o.Filter
		}
		out = append(out, ov)
	}
	return out, nil
}

// checkString bounds a value; the board parser checks what it may contain.
func checkString(s string) error {
	if len(s) > maxString {
		return fmt.Errorf("a string of %d bytes is longer than %d", len(s), maxString)
	}
	return nil
}
