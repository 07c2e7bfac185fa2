package e2e

// Production dm-verity boots against damaged and foreign roots: trees built
// by veritysetup and by mcinit's own builder, one flipped byte in the data
// or in the hash tree under each error policy, and policies whose roots are
// absent or listed A/B.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/diskimage"
	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/e2e/harness"
	"github.com/mcinit/mcinit/verity"
)

// ignore_loglevel: testinit lowers the console log level while it reports
// and runs its actions, which would hide the kernel's dm-verity error lines.
// Those lines can then land inside report text testinit already flushed
// (seen: "root.source=/dev/mapper/mcinit-roo[ 16.7] device-mapper: ..."),
// so the tests read the damaged file first: the report lines they check
// are written after the kernel's.
const loud = "ignore_loglevel "

// verityErr is the kernel's line for a block failing verification
// (drivers/md/dm-verity-target.c, verity_handle_err).
var verityErr = regexp.MustCompile(`device-mapper: verity: [0-9]+:[0-9]+: (data|metadata) block ([0-9]+) is corrupted`)

// wantCorrupted checks that the kernel reported kind ("data" or
// "metadata") block n corrupted, and no other block.
func wantCorrupted(t *testing.T, r *harness.Result, kind string, n uint64) {
	t.Helper()
	var seen []string
	for _, l := range r.Lines {
		if m := verityErr.FindStringSubmatch(l.Text); m != nil {
			seen = append(seen, m[1]+" "+m[2])
			t.Logf("kernel: %s", l.Text)
		}
	}
	want := fmt.Sprintf("%s %d", kind, n)
	if len(seen) == 0 {
		t.Fatalf("the kernel reported no corrupted block, want %s block %d (log %s)", kind, n, r.LogPath)
	}
	for _, s := range seen {
		if s != want {
			t.Errorf("the kernel reported %s block corrupted, want only %s (log %s)", s, want, r.LogPath)
		}
	}
}

// wantHostVerify checks that the verity package, on the host, names the
// same block the test damaged (and the kernel must name).
func wantHostVerify(t *testing.T, d *fixture.VerityDisk, area string, block uint64) {
	t.Helper()
	var ce *verity.CorruptionError
	if err := d.Verify(); !errors.As(err, &ce) || ce.Area != area || ce.Block != block {
		t.Fatalf("host verify of the damaged disk: %v, want %s block %d", err, area, block)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// knownRead is testinit's report of a read-file of an intact known file.
func knownRead(path string) string {
	b := diskimage.KnownFiles()[path]
	return fmt.Sprintf("%s sha256=%s size=%d", path, sha256Hex(b), len(b))
}

// rootLine is /init's console line naming the verity root it mounted.
func rootLine(rootHash string) string {
	return "(erofs, read-only, dm-verity " + rootHash[:16] + ")"
}

// Production boots of the same erofs root with the hash tree written by
// the real veritysetup and by `mcinit verity format`: the root comes from
// /dev/mapper, read-only, the real init runs, modules are locked.
func TestVerityProductionFormatters(t *testing.T) {
	for _, tool := range []string{fixture.FormatVeritysetup, fixture.FormatMCInit} {
		t.Run(tool, func(t *testing.T) {
			e := env(t, "amd64")
			ctx := context.Background()
			d, err := e.ReformatDisk(ctx, "root-"+tool, tool)
			if err != nil {
				t.Fatal(err)
			}
			if d.RootHash == e.RootHash {
				t.Fatalf("reformatting with %s kept the default root hash", tool)
			}
			p := e.DefaultPolicy()
			p.RootHash, p.DataBlocks = d.RootHash, d.Superblock.DataBlocks
			initrd, err := e.PolicyVariant(ctx, "policy-"+tool, p)
			if err != nil {
				t.Fatal(err)
			}
			r := boot(t, e.Machine("verity-"+tool, initrd, d.Path, fixture.OtherSerial,
				"mcinit_test.actions=write-marker,read-file="+diskimage.KnownBlob))
			wantReport(t, r, map[string]string{
				"profile":               "production",
				"root.fstype":           "erofs",
				"root.mode":             "ro",
				"root_writable":         "no",
				"root_writable_error":   "EROFS",
				"action.0.write-marker": "error: EROFS",
				"action.1.read-file":    knownRead(diskimage.KnownBlob),
				"modules_disabled":      "1",
			})
			if src, _ := r.Value("root.source"); !strings.HasPrefix(src, "/dev/mapper/") {
				t.Errorf("root source %q is not a device-mapper device", src)
			}
			if !r.Has(rootLine(d.RootHash)) {
				t.Errorf("no console line %q: the root was not opened with the %s tree's root hash", rootLine(d.RootHash), tool)
			}
		})
	}
}

// One flipped byte in a data block of a known file. EIO: reading the file
// fails with EIO, the rest of the root reads fine and the boot completes.
// Restart: the kernel restarts the machine at the first read of the block.
func TestVerityCorruptData(t *testing.T) {
	e := env(t, "amd64")
	d, err := e.CopyDisk("corrupt-data")
	if err != nil {
		t.Fatal(err)
	}
	// Block 16 of the blob: inside the root, never read before the real
	// init reads the file (dmverity.Open reads the first and last block).
	blob := diskimage.KnownFiles()[diskimage.KnownBlob]
	first, err := d.FindData(blob[:4096])
	if err != nil {
		t.Fatal(err)
	}
	bad := first + 16
	at, err := d.FlipDataByte(bad, 2048)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("flipped disk byte %d: data block %d (block 16 of %s)", at, bad, diskimage.KnownBlob)
	wantHostVerify(t, d, "data", bad)
	// The damaged file is read first: the kernel's lines are printed
	// during that read, so they cannot split the report lines checked.
	actions := loud + "mcinit_test.actions=read-file=" + diskimage.KnownBlob + ",read-file=" + diskimage.KnownSmall

	t.Run("eio", func(t *testing.T) {
		r := boot(t, e.Machine("verity-data-eio", e.Initrd, d.Path, fixture.OtherSerial, actions))
		wantReport(t, r, map[string]string{
			"profile":            "production",
			"action.0.read-file": diskimage.KnownBlob + " error=EIO",
			"action.1.read-file": knownRead(diskimage.KnownSmall),
		})
		if r.Outcome != harness.PoweredOff {
			t.Errorf("outcome %s, want %s", r.Outcome, harness.PoweredOff)
		}
		wantCorrupted(t, r, "data", bad)
	})

	t.Run("restart", func(t *testing.T) {
		p := e.DefaultPolicy()
		p.VerityError = "restart"
		initrd, err := e.PolicyVariant(context.Background(), "verity-restart", p)
		if err != nil {
			t.Fatal(err)
		}
		r := boot(t, e.Machine("verity-data-restart", initrd, d.Path, fixture.OtherSerial, actions))
		if r.Outcome != harness.Rebooted {
			t.Fatalf("outcome %s, want %s (log %s)", r.Outcome, harness.Rebooted, r.LogPath)
		}
		if !r.Has("testinit: started") {
			t.Error("the real init never ran: the restart came before the corrupted read")
		}
		if r.ReportComplete {
			t.Error("testinit finished its report: the corrupted read did not restart the machine")
		}
		wantCorrupted(t, r, "data", bad)
		// kernel_restart's line names dm-verity as the reason.
		if !r.Has("reboot: Restarting system with command 'dm-verity device corrupted'") {
			t.Errorf("no kernel restart line naming dm-verity (log %s)", r.LogPath)
		}
	})
}

// One flipped byte in the hash tree. In a level-0 block whose data blocks
// all belong to /usr/bin/mcinit (which nothing runs during the boot), the
// kernel fails reads of that file (EIO mode) and names the hash block. In
// the top block, dmverity refuses before activation: it no longer hashes
// to the policy's root hash.
func TestVerityCorruptHash(t *testing.T) {
	e := env(t, "amd64")

	t.Run("leaf", func(t *testing.T) {
		d, err := e.CopyDisk("corrupt-leaf")
		if err != nil {
			t.Fatal(err)
		}
		cli, err := os.ReadFile(e.Dir + "/mcinit-" + e.Arch)
		if err != nil {
			t.Fatalf("the guest CLI the disk carries: %v", err)
		}
		first, err := d.FindData(cli[:4096])
		if err != nil {
			t.Fatal(err)
		}
		// The first level-0 block covering only whole blocks of the CLI,
		// and not the image's last block (read when the device is opened).
		per := d.DataBlocksPerLeaf()
		lo := (first + per - 1) / per * per
		end := first + uint64(len(cli))/4096 // blocks wholly in the file
		if lo+per > end || lo+per >= d.Superblock.DataBlocks-1 {
			t.Fatalf("no level-0 hash block covers only %s (blocks %d-%d, %d per hash block)", "/usr/bin/mcinit", first, end, per)
		}
		leaf, off := d.LeafFor(lo)
		at, err := d.FlipHashByte(leaf, off+5)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("flipped disk byte %d: hash block %d, covering data blocks %d-%d", at, leaf, lo, lo+per-1)
		wantHostVerify(t, d, "hash", leaf)
		r := boot(t, e.Machine("verity-leaf-eio", e.Initrd, d.Path, fixture.OtherSerial,
			loud+"mcinit_test.actions=read-file=/usr/bin/mcinit,read-file="+diskimage.KnownBlob))
		wantReport(t, r, map[string]string{
			"profile":            "production",
			"action.0.read-file": "/usr/bin/mcinit error=EIO",
			"action.1.read-file": knownRead(diskimage.KnownBlob),
		})
		wantCorrupted(t, r, "metadata", leaf)
	})

	t.Run("top", func(t *testing.T) {
		d, err := e.CopyDisk("corrupt-top")
		if err != nil {
			t.Fatal(err)
		}
		top := d.TopBlock()
		if _, err := d.FlipHashByte(top, 100); err != nil {
			t.Fatal(err)
		}
		wantHostVerify(t, d, "hash", top)
		r := boot(t, e.Machine("verity-top", e.Initrd, d.Path, fixture.OtherSerial, ""))
		wantRefusal(t, r, fmt.Sprintf(`opening dm-verity root "A" on /dev/vda%d: root hash mismatch: the policy's root hash %s does not match the tree on /dev/vda%d`,
			d.Data.Number, e.RootHash, d.Hash.Number))
	})
}

// A damaged level-0 block covering data block 0: the top still matches,
// so the table loads, but dmverity.Open's read of the first block through
// the device fails and /init refuses (EIO mode) instead of mounting.
func TestVerityCorruptFirstLeaf(t *testing.T) {
	e := env(t, "amd64")
	d, err := e.CopyDisk("corrupt-first-leaf")
	if err != nil {
		t.Fatal(err)
	}
	leaf, off := d.LeafFor(0)
	if _, err := d.FlipHashByte(leaf, off+31); err != nil {
		t.Fatal(err)
	}
	wantHostVerify(t, d, "hash", leaf)
	want := fmt.Sprintf(`opening dm-verity root "A" on /dev/vda%d: dm-verity mcinit-root: reading data block 0 through the device failed`, d.Data.Number)
	r := boot(t, e.Machine("verity-first-leaf", e.Initrd, d.Path, fixture.OtherSerial, ""))
	wantRefusal(t, r, want)
	wantCorrupted(t, r, "metadata", leaf)

	// Under restart_on_corruption the same damage must still be a refusal:
	// /init probes on an EIO table first, so the device cannot reboot into
	// the same failure forever.
	p := e.DefaultPolicy()
	p.VerityError = "restart"
	initrd, err := e.PolicyVariant(context.Background(), "verity-first-leaf-restart", p)
	if err != nil {
		t.Fatal(err)
	}
	r = boot(t, e.Machine("verity-first-leaf-restart", initrd, d.Path, fixture.OtherSerial, ""))
	wantRefusal(t, r, want)
}

// A policy whose only root hash matches no partition: refused after the
// bounded wait, never booted from whatever disk is there.
func TestVerityNoMatchingRoot(t *testing.T) {
	e := env(t, "amd64")
	p := e.DefaultPolicy()
	p.RootHash = sha256Hex([]byte("a root image that is not on this disk"))
	initrd, err := e.PolicyVariant(context.Background(), "verity-nomatch", p)
	if err != nil {
		t.Fatal(err)
	}
	r := boot(t, e.Machine("verity-nomatch", initrd, e.Disk, fixture.OtherSerial, ""))
	wantRefusal(t, r, "no accepted root image found after ")
}

// A/B: the policy accepts two roots; only the second is on the disk, and
// /init boots it (roots are tried in policy order, the first present wins).
func TestVerityABSecondRoot(t *testing.T) {
	e := env(t, "amd64")
	absent := sha256Hex([]byte("root A, not installed"))
	initrd, err := e.RootsPolicyVariant(context.Background(), "verity-ab", e.DefaultPolicy(),
		[]fixture.Root{{Name: "A", RootHash: absent, DataBlocks: e.DataBlocks}, {Name: "B", RootHash: e.RootHash, DataBlocks: e.DataBlocks}})
	if err != nil {
		t.Fatal(err)
	}
	r := boot(t, e.Machine("verity-ab", initrd, e.Disk, fixture.OtherSerial, ""))
	wantReport(t, r, map[string]string{
		"profile":          "production",
		"root.mode":        "ro",
		"modules_disabled": "1",
	})
	if !r.Has(rootLine(e.RootHash)) {
		t.Errorf("no console line %q: root B was not the one opened", rootLine(e.RootHash))
	}
}

// A/B with both roots installed: the disk holds A (partitions 1-2) and B
// (3-4); the policy lists B first, and /init boots B: policy order, not
// disk order, decides.
func TestVerityABPolicyOrder(t *testing.T) {
	e := env(t, "amd64")
	ctx := context.Background()
	b, err := e.ReformatDisk(ctx, "root-b", fixture.FormatVeritysetup)
	if err != nil {
		t.Fatal(err)
	}
	two, err := e.TwoRootDisk(ctx, "two-roots", b)
	if err != nil {
		t.Fatal(err)
	}
	initrd, err := e.RootsPolicyVariant(ctx, "verity-ba", e.DefaultPolicy(),
		[]fixture.Root{{Name: "B", RootHash: b.RootHash, DataBlocks: b.Superblock.DataBlocks}, {Name: "A", RootHash: e.RootHash, DataBlocks: e.DataBlocks}})
	if err != nil {
		t.Fatal(err)
	}
	r := boot(t, e.Machine("verity-ba", initrd, two.Path, fixture.OtherSerial, ""))
	wantReport(t, r, map[string]string{"profile": "production", "root.mode": "ro"})
	if !r.Has(rootLine(b.RootHash)) {
		t.Errorf("no console line %q: root B, first in the policy, was not the one opened", rootLine(b.RootHash))
	}
}
