package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/diskimage"
	"github.com/mcinit/mcinit/grantpart"
	"github.com/mcinit/mcinit/internal/testenv"
)

// TestGrantDisk: image -grants makes the partition, grant write replaces
// its contents in place (nothing else on the disk changes, same grants
// give the same bytes), grant list reads them back and verifies them.
func TestGrantDisk(t *testing.T) {
	testenv.RequireTool(t, "sgdisk", "gdisk")
	testenv.RequireTool(t, "mkfs.erofs", "erofs-utils")
	dir := t.TempDir()
	in := func(n string) string { return filepath.Join(dir, n) }
	code := func(name string, args ...string) int {
		t.Helper()
		return exitCode(name, verbs[name].run(args))
	}
	must := func(name string, args ...string) {
		t.Helper()
		if c := code(name, args...); c != exitOK {
			t.Fatalf("mcinit %s %q: exit %d", name, args, c)
		}
	}
	must("keygen", "-out", in("a"))
	must("keygen", "-out", in("other"))
	keys := in("keys")
	os.Mkdir(keys, 0o755)
	b, _ := os.ReadFile(in("a.pub"))
	os.WriteFile(filepath.Join(keys, "a.pem"), b, 0o644)
	os.WriteFile(filepath.Join(keys, "keyset.toml"), []byte("threshold = 1\n"), 0o644)
	must("grant", "-board", "qemu-x86_64", "-device", "SN-1", "-max-version", "7", "-key", in("a.key"), "-out", in("g1.toml"))
	must("grant", "-board", "qemu-x86_64", "-device", "SN-2", "-max-version", "7", "-key", in("other.key"), "-out", in("foreign.toml"))

	empty := in("none")
	os.Mkdir(empty, 0o755)
	init := in("testinit")
	os.WriteFile(init, []byte("stand-in"), 0o755)
	disk := in("disk.img")
	out, err := imageStdout(t, "-out", disk, "-verity", "-testinit", init, "-grants", empty, "-json")
	if err != nil {
		t.Fatal(err)
	}
	var res diskimage.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Extra) != 1 || res.Extra[0].Label != grantpart.Label || res.Extra[0].TypeUUID != grantpart.TypeUUID || res.Extra[0].Size != grantpart.DefaultPartSize {
		t.Fatalf("extra partitions %+v", res.Extra)
	}
	if es, err := grantpart.ReadDisk(disk); err != nil || len(es) != 0 {
		t.Fatalf("fresh grants partition: %v %v", es, err)
	}
	before, _ := os.ReadFile(disk)

	if c := code("grant", "write", "-disk", disk, "-keys", keys, in("foreign.toml")); c != exitRejected {
		t.Errorf("writing a grant that does not verify under -keys: exit %d", c)
	}
	must("grant", "write", "-disk", disk, "-keys", keys, in("g1.toml"))
	after, _ := os.ReadFile(disk)
	p := res.Extra[0]
	if len(after) != len(before) || !bytes.Equal(before[:p.Offset], after[:p.Offset]) || !bytes.Equal(before[p.Offset+p.Size:], after[p.Offset+p.Size:]) {
		t.Fatal("grant write changed bytes outside the grants partition")
	}
	must("grant", "list", "-disk", disk, "-keys", keys)
	// decide reads the disk's grants as /init does.
	sample, err := os.ReadFile("../../policy/testdata/sample-policy.toml")
	if err != nil {
		t.Fatal(err)
	}
	pol := in("p.toml")
	os.WriteFile(pol, sample, 0o644)
	must("policy", "sign", "-key", in("a.key"), pol)
	out, err = capture(t, func() error {
		return verbs["decide"].run([]string{"-policy", pol, "-keys", keys, "-board", "qemu-x86_64", "-device", "SN-1",
			"-cmdline", "mcinit.profile=development", "-grants-disk", disk})
	})
	if err != nil || !strings.Contains(out, "reason   dev-allowed-grant") || !strings.Contains(out, `grant    grant board=qemu-x86_64 device="SN-1"`) {
		t.Errorf("decide -grants-disk: %v\n%s", err, out)
	}
	// Without -keys a foreign grant is written (it is only parsed); list
	// with -keys then rejects it.
	must("grant", "write", "-disk", disk, in("g1.toml"), in("foreign.toml"))
	if c := code("grant", "list", "-disk", disk, "-keys", keys); c != exitRejected {
		t.Errorf("list of a foreign grant: exit %d", c)
	}
	must("grant", "write", "-disk", disk, in("g1.toml"))
	again, _ := os.ReadFile(disk)
	if !bytes.Equal(again, after) {
		t.Error("writing the same grant twice gives different bytes")
	}
	// image -grants with the grant gives the same partition bytes.
	gdir := in("grants")
	os.Mkdir(gdir, 0o755)
	for _, n := range []string{"g1.toml", "g1.toml.sig"} {
		b, _ := os.ReadFile(in(n))
		os.WriteFile(filepath.Join(gdir, n), b, 0o644)
	}
	disk2 := in("disk2.img")
	if _, err := imageStdout(t, "-out", disk2, "-verity", "-testinit", init, "-grants", gdir); err != nil {
		t.Fatal(err)
	}
	d2, _ := os.ReadFile(disk2)
	if !bytes.Equal(d2, after) {
		t.Error("image -grants DIR and image + grant write give different disks")
	}
	if c := code("grant", "write", in("g1.toml")); c != exitUsage {
		t.Errorf("grant write without -disk: exit %d", c)
	}
}

// capture runs f with os.Stdout redirected and returns what it printed.
func capture(t *testing.T, f func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	ferr := f()
	os.Stdout = old
	w.Close()
	b, _ := io.ReadAll(r)
	return string(b), ferr
}
