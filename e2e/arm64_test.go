package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/e2e/harness"
)

// aarch64 -M virt: the identity comes from the device tree
// ("linux,dummy-virt"), the board must load tpm_tis and the virtio modules.
func TestArm64VirtProduction(t *testing.T) {
	e := env(t, "arm64")
	r := boot(t, e.Machine("arm64-production", e.Initrd, e.Disk, "", ""))
	wantReport(t, r, map[string]string{
		"profile":          "production",
		"root.mode":        "ro",
		"root_writable":    "no (EROFS)",
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
	r := boot(t, m)
	if !r.Has("mcinit: board: nxp-imx8mq-evk") {
		t.Fatalf("board nxp-imx8mq-evk not selected; log %s", r.LogPath)
	}
	if !r.Has("fsl,imx8mq-evk") {
		t.Error("identity line does not show the edited compatible")
	}
	// The i.MX8 board loads no virtio driver, so the QEMU disk never shows
	// up: a clear refusal after the board's root_wait, not a hang.
	line, ok := r.First("mcinit: refusing to boot: ")
	if !ok || !strings.Contains(line.Text, "no accepted root image found") {
		t.Errorf("want the missing-root refusal, got %q", line.Text)
	}
}
