package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/boot"
	"github.com/mcinit/mcinit/boot/boottest"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/grantpart"
	"github.com/mcinit/mcinit/initramfs/layout"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/rootfs"
	"github.com/mcinit/mcinit/signing"
)

// Grants on the disk's mcinit-grants partition (/dev/vda3 here): read
// raw, verified exactly like the initramfs's, never able to refuse or
// weaken a boot.

const grantsDev = "/dev/vda3"

func unitGrant(device string) []byte {
	maxV := uint64(3)
	b, err := policy.MarshalGrant(&policy.Grant{Format: policy.GrantFormat, Board: "qemu-x86_64", DeviceID: device, MaxPolicyVersion: &maxV})
	if err != nil {
		panic(err) // only invalid UTF-8 fails
	}
	return b
}

// sigBy signs doc with k, as `mcinit grant` does.
func sigBy(t *testing.T, im *boottest.Image, doc []byte) []byte {
	t.Helper()
	s, err := signing.Sign(im.Key, doc)
	if err != nil {
		t.Fatal(err)
	}
	return signing.FormatSignatures([]signing.Signature{s})
}

// foreignSig signs doc with a key the image does not trust.
func foreignSig(t *testing.T, doc []byte) []byte {
	t.Helper()
	k, err := signing.GenerateKey(signing.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.Sign(k, doc)
	if err != nil {
		t.Fatal(err)
	}
	return signing.FormatSignatures([]signing.Signature{s})
}

// grantsPart puts raw bytes on a third partition named mcinit-grants.
func grantsPart(raw func(t *testing.T, im *boottest.Image) []byte) func(*testing.T, *boottest.Image, *boottest.Env) {
	return func(t *testing.T, im *boottest.Image, env *boottest.Env) {
		env.Parts = append(env.Parts, rootfs.BlockPartition{Partition: rootfs.Partition{Number: 3, Label: grantpart.Label}, Disk: "vda", Dev: grantsDev})
		env.Raw = map[string][]byte{grantsDev: raw(t, im)}
	}
}

func container(t *testing.T, es ...grantpart.Entry) []byte {
	t.Helper()
	b, err := grantpart.Build(es)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, make([]byte, 4096)...) // the rest of the partition
}

func TestBootPartitionGrant(t *testing.T) {
	doc := unitGrant(prodSer)
	p := pol{}.String()
	r := runBoot(t, bootCase{policy: p, line: "mcinit.profile=development", disks: grantsPart(func(t *testing.T, im *boottest.Image) []byte {
		return container(t, grantpart.Entry{Name: "unit.toml", Grant: doc, Sig: sigBy(t, im, doc)})
	})})
	if r.err != nil {
		t.Fatalf("refused: %v\n%s", r.err, strings.Join(r.log.Lines, "\n"))
	}
	if r.env.Summary.Profile != "development" || r.env.Summary.Reason != "dev-allowed-grant" {
		t.Fatalf("summary %+v\n%s", r.env.Summary, strings.Join(r.log.Lines, "\n"))
	}
	if !r.did("read " + grantsDev) {
		t.Errorf("actions %q: the grants partition was not read", r.env.Actions)
	}
	sum := sha256.Sum256(doc)
	for _, want := range []string{
		`mcinit: grants partition /dev/vda3: 1 grant(s)`,
		`mcinit: grant partition /dev/vda3 "unit.toml": grant board=qemu-x86_64 device="MCPROD-0042" max_policy_version=3, verified`,
		`mcinit: development unlocked by grant partition /dev/vda3 "unit.toml" (sha256 ` + hex.EncodeToString(sum[:8]) + `)`,
	} {
		if !slices.Contains(r.log.Lines, want) {
			t.Errorf("no line %q in\n%s", want, strings.Join(r.log.Lines, "\n"))
		}
	}
	// The grant event names the grant and its source; predict's builder
	// gives the same PCR.
	ks := boot.ReadPolicy(r.env.Files).Keys
	ids, thr := boot.KeyIDs(ks)
	f := boot.Facts{PolicyRaw: []byte(p), KeyIDs: ids, Threshold: thr, Board: "qemu-x86_64", Identity: r.env.ID,
		Decision: decide.Facts{Request: decide.RequestDevelopment, Profile: decide.Development, Reason: decide.ReasonDevGrant},
		Grant:    boot.GrantRef{SHA256: hex.EncodeToString(sum[:]), Source: measure.GrantInPartition},
		Root:     measure.Root{Kind: measure.RootOverlay, RootHash: rootA, Upper: "tmpfs"}}
	if got, want := fmt.Sprintf("%x", r.pcr), fmt.Sprintf("%x", predictPCR(t, f)); got != want {
		t.Errorf("PCR 13 %s, predict %s", got, want)
	}
	if !bytes.Contains(r.env.EventLog, []byte("grant-sha256="+hex.EncodeToString(sum[:])+"\nsource=partition\n")) {
		t.Error("no grant event in the log")
	}
}

// TestBootPartitionGrantRejected: whatever is on the partition, a bad
// grant boots production (never a refusal), with one line naming it and
// the reason.
func TestBootPartitionGrantRejected(t *testing.T) {
	doc := unitGrant(prodSer)
	cases := []struct {
		name string
		raw  func(t *testing.T, im *boottest.Image) []byte
		line string
	}{
		{"tampered", func(t *testing.T, im *boottest.Image) []byte {
			sig := sigBy(t, im, doc)
			return container(t, grantpart.Entry{Name: "unit.toml", Grant: bytes.Replace(doc, []byte("= 3"), []byte("= 9"), 1), Sig: sig})
		}, `mcinit: warning: grant ignored: partition /dev/vda3 "unit.toml": grant signature: bad signature from key `},
		{"foreign key", func(t *testing.T, im *boottest.Image) []byte {
			return container(t, grantpart.Entry{Name: "unit.toml", Grant: doc, Sig: foreignSig(t, doc)})
		}, `mcinit: warning: grant ignored: partition /dev/vda3 "unit.toml": grant signature: only 0 of 1 required distinct signatures; ignored 1 signature(s) by unknown key(s) `},
		{"other device", func(t *testing.T, im *boottest.Image) []byte {
			other := unitGrant("MCPROD-0099")
			return container(t, grantpart.Entry{Name: "other.toml", Grant: other, Sig: sigBy(t, im, other)})
		}, `mcinit: warning: grant ignored: partition /dev/vda3 "other.toml": it is for board qemu-x86_64 device "MCPROD-0099", this is board qemu-x86_64 device "MCPROD-0042"`},
		{"garbage", func(t *testing.T, im *boottest.Image) []byte {
			return []byte("\x7fELF and then some more bytes")
		}, `mcinit: warning: grants partition /dev/vda3 ignored: not a grants container (magic "?ELF and")`},
		{"damaged", func(t *testing.T, im *boottest.Image) []byte {
			b := container(t, grantpart.Entry{Name: "unit.toml", Grant: doc, Sig: sigBy(t, im, doc)})
			b[40] ^= 1
			return b
		}, `mcinit: warning: grants partition /dev/vda3 ignored: checksum mismatch: damaged or partly written`},
		{"blank", func(t *testing.T, im *boottest.Image) []byte { return make([]byte, 1<<20) },
			`mcinit: grants partition /dev/vda3: blank (no grants written)`},
		{"not a grant", func(t *testing.T, im *boottest.Image) []byte {
			pdoc := []byte(pol{}.String())
			return container(t, grantpart.Entry{Name: "policy.toml", Grant: pdoc, Sig: sigBy(t, im, pdoc)})
		}, `mcinit: warning: grant ignored: partition /dev/vda3 "policy.toml": grant: `},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runBoot(t, bootCase{policy: pol{}.String(), line: "mcinit.profile=development", disks: grantsPart(c.raw)})
			if r.err != nil {
				t.Fatalf("refused: %v", r.err)
			}
			if r.env.Summary.Profile != "production" || r.env.Summary.Reason != "dev-denied" {
				t.Errorf("summary %+v", r.env.Summary)
			}
			if r.line(c.line) == "" {
				t.Errorf("no line %q in\n%s", c.line, strings.Join(r.log.Lines, "\n"))
			}
			if !r.did("verity /dev/vda1 /dev/vda2") || !r.did("lock-modules") {
				t.Errorf("actions %q: want the production root", r.env.Actions)
			}
		})
	}
}

// TestBootGrantsPartitionUnread: a production boot, a policy without
// allow_grants, or a request a device rule already covers never lets the
// partition's bytes matter; the first two never read it at all.
func TestBootGrantsPartitionUnread(t *testing.T) {
	garbage := grantsPart(func(t *testing.T, im *boottest.Image) []byte { return []byte("garbage") })
	r := runBoot(t, bootCase{policy: pol{}.String(), disks: garbage})
	if r.err != nil || r.env.Summary.Reason != "default" || r.did("read ") {
		t.Errorf("production: err %v, summary %+v, actions %q", r.err, r.env.Summary, r.env.Actions)
	}
	noGrants := pol{dev: &policy.Development{}}.String()
	r = runBoot(t, bootCase{policy: noGrants, line: "mcinit.profile=development", disks: garbage})
	if r.err != nil || r.env.Summary.Reason != "dev-denied" || r.did("read ") {
		t.Errorf("no allow_grants: err %v, summary %+v, actions %q", r.err, r.env.Summary, r.env.Actions)
	}
	// No grants partition at all: the scan stops when the root is seen.
	r = runBoot(t, bootCase{policy: pol{}.String(), line: "mcinit.profile=development"})
	if r.err != nil || r.env.Summary.Reason != "dev-denied" || r.line("mcinit: grants partition: none") == "" {
		t.Errorf("no partition: err %v, summary %+v\n%s", r.err, r.env.Summary, strings.Join(r.log.Lines, "\n"))
	}
}

// TestBootGrantBothSources: the same grant in the initramfs and on the
// partition is read once and measured as the initramfs's.
func TestBootGrantBothSources(t *testing.T) {
	doc := unitGrant(prodSer)
	r := runBoot(t, bootCase{policy: pol{}.String(), line: "mcinit.profile=development",
		image: func(t *testing.T, im *boottest.Image) { im.Sign(t, layout.GrantsDir+"/unit.toml", doc) },
		disks: grantsPart(func(t *testing.T, im *boottest.Image) []byte {
			return container(t, grantpart.Entry{Name: "copy.toml", Grant: doc, Sig: sigBy(t, im, doc)})
		})})
	if r.err != nil || r.env.Summary.Reason != "dev-allowed-grant" {
		t.Fatalf("err %v summary %+v", r.err, r.env.Summary)
	}
	want := `mcinit: grant partition /dev/vda3 "copy.toml": the same grant as initramfs ` + layout.GrantsDir + `/unit.toml, read once`
	if !slices.Contains(r.log.Lines, want) {
		t.Errorf("no line %q in\n%s", want, strings.Join(r.log.Lines, "\n"))
	}
	if !bytes.Contains(r.env.EventLog, []byte("\nsource=initramfs\n")) {
		t.Error("the grant event does not name the initramfs")
	}
}
