package diskimage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// GoBuild builds Go package pkg (as understood by `go build` run in dir)
// into a static, reproducible linux/goarch binary at out: CGO_ENABLED=0,
// -trimpath, no build ID, symbols stripped.
func GoBuild(ctx context.Context, dir, pkg, goarch, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid=", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s (GOARCH=%s): %v: %s", pkg, goarch, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
