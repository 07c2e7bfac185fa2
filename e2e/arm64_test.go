package e2e

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/diskimage"
	"github.com/mcinit/mcinit/e2e/harness"
	"github.com/mcinit/mcinit/initramfs"
)

// aarch64 -M virt: the identity comes from the device tree
// ("linux,dummy-virt"), the board must load tpm_tis and the virtio modules.
func TestArm64VirtProduction(t *testing.T) {
	t.Parallel()
	e := env(t, "arm64")
	r := boot(t, e.Machine("arm64-production", e.Initrd, e.Disk, "", ""))
	wantReport(t, r, map[string]string{
		"profile":          "production",
		"root.mode":        "ro",
		"root_writable":    "no",
		"modules_disabled": "1",
		"file.board":       "qemu-aarch64-virt",
	})
	if !r.Has("linux,dummy-virt") {
		t.Error("identity line does not show the DT compatible")
	}
}

// The same machine with its device tree edited to say it is an i.MX8MQ EVK:
// the real kernel reports the new compatible and mcinit picks that board.
func TestArm64EditedDTSelectsIMX8(t *testing.T) {
	t.Parallel()
	e := env(t, "arm64")
	m := e.Machine("arm64-imx8", e.Initrd, e.Disk, "", "")
	dtb := filepath.Join(t.TempDir(), "virt.dtb")
	if err := harness.DumpDTB(context.Background(), m, dtb); err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(t.TempDir(), "imx8mq.dtb")
	if err := harness.EditDTBCompatible(dtb, edited, []string{"fsl,imx8mq-evk", "fsl,imx8mq"}, "NXP i.MX8MQ EVK"); err != nil {
		t.Fatal(err)
	}
	m.DTB = edited
	// The image gains the i.MX8 board file and a policy covering it; its
	// modules are not in the cloud kernel, so the boot must stop there.
	imx, err := fs.ReadFile(boards.ShippedFS(), "nxp-imx8mq-evk.toml")
	if err != nil {
		t.Fatal(err)
	}
	p := e.DefaultPolicy()
	p.Boards = append(p.Boards, "nxp-imx8mq-evk")
	m.Initrd, err = e.PolicyVariantWith(context.Background(), "imx8", p,
		map[string][]byte{initramfs.BoardsDir + "/nxp-imx8mq-evk.toml": imx})
	if err != nil {
		t.Fatal(err)
	}
	r := boot(t, m)
	if !r.Has("mcinit: board: nxp-imx8mq-evk") {
		t.Fatalf("board nxp-imx8mq-evk not selected; log %s", r.LogPath)
	}
	if !r.Has("fsl,imx8mq-evk") {
		t.Error("identity line does not show the edited compatible")
	}
	// Debian's cloud kernel lacks the i.MX8 SD/I2C drivers: a clear
	// refusal naming the board and the missing module, not a hang.
	wantRefusal(t, r, "loading modules for board nxp-imx8mq-evk")
}

// TestArm64DevelopmentAndAttest: on aarch64 -M virt (identity from the
// device tree, no serial: development by board), a production boot and a
// development boot of one device. Each quote, made in the guest by
// `mcinit attest`, is classified by `mcinit verify` on the host and its PCR
// equals `mcinit predict`; the development root is writable, and its
// quote never passes as production.
func TestArm64DevelopmentAndAttest(t *testing.T) {
	t.Parallel()
	e := env(t, "arm64")
	ctx := context.Background()
	requireTools(t, "tpm2_checkquote", "swtpm")
	p := e.DefaultPolicy()
	p.DevBoards = []string{e.Board}
	initrd, err := e.PolicyVariant(ctx, "arm64-attest", p)
	if err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(e.Dir, "arm64-attest.toml")
	state, work := t.TempDir(), t.TempDir()

	n1 := randomNonce(t)
	r := bootDevice(t, e, "arm64-attest-production", initrd, state, "",
		"exec="+guestMCInit+" attest -nonce "+n1+" -out /run/q",
		"exec="+guestMCInit+" attest -ak-pub-out /run/q/enrolled-ak.pem",
		"dump-dir=/run/q")
	wantReport(t, r, map[string]string{"profile": "production", "root.mode": "ro", "modules_disabled": "1",
		"file.board": "qemu-aarch64-virt", "action.0.exec.rc": "0", "action.1.exec.rc": "0"})
	identity, ok := r.Value("file.identity")
	if !ok || !strings.Contains(identity, "linux,dummy-virt") {
		t.Fatalf("identity %q from /run/mcinit/identity is not the device tree's", identity)
	}
	q1 := evidence(t, r, 2, filepath.Join(work, "production"))
	ak := filepath.Join(work, "enrolled-ak.pem")
	if err := os.Rename(filepath.Join(q1, "enrolled-ak.pem"), ak); err != nil {
		t.Fatal(err)
	}
	checkQuote(t, e, q1, n1, ak, pol, identity, "production")

	n2 := randomNonce(t)
	r = bootDevice(t, e, "arm64-attest-development", initrd, state, "mcinit.profile=development",
		"write-marker=arm64-dev",
		"exec="+guestMCInit+" attest -nonce "+n2+" -out /run/q",
		"dump-dir=/run/q")
	wantReport(t, r, map[string]string{"profile": "development", "root_writable": "yes",
		"action.0.write-marker": "ok", "action.1.exec.rc": "0"})
	q2 := evidence(t, r, 2, filepath.Join(work, "development"))
	checkQuoteReason(t, e, q2, n2, ak, pol, identity, "development", "dev-allowed-board")
	if _, err := verify(e, q2, n2, ak, pol, "production"); err == nil {
		t.Error("verify -require-profile production accepted an aarch64 development quote")
	}
}

// TestArm64VerityCorruptData: one flipped byte in a data block of a known
// file on aarch64, EIO mode: the read of that file fails with EIO, the
// kernel names exactly that block, the rest of the root reads fine.
func TestArm64VerityCorruptData(t *testing.T) {
	t.Parallel()
	e := env(t, "arm64")
	d, err := e.CopyDisk("arm64-corrupt-data")
	if err != nil {
		t.Fatal(err)
	}
	blob := diskimage.KnownFiles()[diskimage.KnownBlob]
	first, err := d.FindData(blob[:4096])
	if err != nil {
		t.Fatal(err)
	}
	bad := first + 16
	if _, err := d.FlipDataByte(bad, 2048); err != nil {
		t.Fatal(err)
	}
	wantHostVerify(t, d, "data", bad)
	actions := loud + "mcinit_test.actions=read-file=" + diskimage.KnownBlob + ",read-file=" + diskimage.KnownSmall
	r := boot(t, e.Machine("arm64-verity-data-eio", e.Initrd, d.Path, "", actions))
	wantReport(t, r, map[string]string{
		"profile":            "production",
		"action.0.read-file": diskimage.KnownBlob + " error=EIO",
		"action.1.read-file": knownRead(diskimage.KnownSmall),
	})
	wantCorrupted(t, r, "data", bad)
}
