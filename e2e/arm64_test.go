package e2e

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/mcinit/mcinit/boards"
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
