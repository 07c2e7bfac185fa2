// Package device builds the device payload of mcinit's initramfs with
// u-root's mkuimage: /init (and, for development-capable images, a small
// rescue toolset) as one busybox-style Go binary, with its bbin/ links, as
// an uncompressed newc archive. It needs the mcinit source tree and a Go
// toolchain; it runs once per version and arch (cmds/mkdevice), and
// package initramfs packs images from the result without either.
//
// It links golang.org/x/tools' import index, whose package initialisation
// creates a "goimports" directory in the user cache directory (in /tmp
// under `go test`): keep it out of the CLI and of tests, and run
// cmds/mkdevice with XDG_CACHE_HOME pointing at a directory you remove.
package device

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/cpio"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"
)

// InitPackage is the Go package built as /init.
const InitPackage = "github.com/mcinit/mcinit/cmds/init"

// RescueCommands are the u-root core commands shipped in images that may
// boot development, for the rescue shell. Production-only images carry none.
var RescueCommands = []string{
	"github.com/u-root/u-root/cmds/core/gosh",
	"github.com/u-root/u-root/cmds/core/cat",
	"github.com/u-root/u-root/cmds/core/cp",
	"github.com/u-root/u-root/cmds/core/dmesg",
	"github.com/u-root/u-root/cmds/core/echo",
	"github.com/u-root/u-root/cmds/core/grep",
	"github.com/u-root/u-root/cmds/core/insmod",
	"github.com/u-root/u-root/cmds/core/ls",
	"github.com/u-root/u-root/cmds/core/lsmod",
	"github.com/u-root/u-root/cmds/core/mkdir",
	"github.com/u-root/u-root/cmds/core/mount",
	"github.com/u-root/u-root/cmds/core/mv",
	"github.com/u-root/u-root/cmds/core/ps",
	"github.com/u-root/u-root/cmds/core/rm",
	"github.com/u-root/u-root/cmds/core/rmmod",
	"github.com/u-root/u-root/cmds/core/shutdown",
	"github.com/u-root/u-root/cmds/core/sync",
	"github.com/u-root/u-root/cmds/core/umount",
}

// RescueBuildTag builds gosh without its interactive editor: it prompts
// "$ " and reads lines as the console's line discipline delivers them.
const RescueBuildTag = "goshsmall"

// Build compiles the payload for GOARCH arch from the mcinit module at
// workDir and returns it as a newc archive (no trailer), records sorted
// and normalised so the bytes depend only on the sources.
func Build(arch string, rescue bool, workDir, tmpDir string, log *slog.Logger) ([]byte, error) {
	if arch != "amd64" && arch != "arm64" {
		return nil, fmt.Errorf("device: unsupported arch %q (want amd64 or arm64)", arch)
	}
	tmp, err := os.MkdirTemp(tmpDir, "mcinit-device-")
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmds := []string{InitPackage}
	if rescue {
		cmds = append(cmds, RescueCommands...)
	}
	envOpts := []golang.Opt{golang.DisableCGO(), golang.WithGOOS("linux"), golang.WithGOARCH(arch)}
	if rescue {
		// gosh's plain line reader instead of its full-screen editor
		// (bubbline), whose escape sequences and terminal queries a serial
		// console cannot follow; it also keeps the TUI libraries out.
		envOpts = append(envOpts, golang.WithBuildTag(RescueBuildTag))
	}
	if workDir != "" {
		envOpts = append(envOpts, golang.WithWorkingDir(workDir))
	}
	empty, err := cpio.ArchiveFromRecords(nil)
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	cpioPath := filepath.Join(tmp, "device.cpio")
	mods := []uimage.Modifier{
		uimage.WithEnv(envOpts...),
		uimage.WithTempDir(tmp),
		uimage.WithBaseArchive(empty),
		uimage.WithBusyboxCommands(cmds...),
		uimage.WithInit(path.Base(InitPackage)),
		uimage.WithSkipLDD(),
		uimage.WithCPIOOutput(cpioPath),
	}
	if rescue {
		mods = append(mods, uimage.WithShell("gosh"))
	}
	l := llog.New(slog.LevelWarn, func(format string, a ...any) {
		if log != nil {
			log.Warn(fmt.Sprintf(format, a...))
		}
	})
	if err := uimage.Create(l, mods...); err != nil {
		return nil, fmt.Errorf("device: building with mkuimage: %w", err)
	}
	raw, err := os.ReadFile(cpioPath)
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("device: reading mkuimage's archive: %w", err)
	}
	var keep []cpio.Record
	for _, r := range recs {
		if r.Name != "TRAILER!!!" {
			keep = append(keep, r)
		}
	}
	sort.Slice(keep, func(i, j int) bool { return keep[i].Name < keep[j].Name })
	cpio.MakeAllReproducible(keep)
	var out bytes.Buffer
	if err := cpio.WriteRecords(cpio.Newc.Writer(&out), keep); err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	return out.Bytes(), nil
}
