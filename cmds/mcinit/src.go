package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// moduleRoot finds mcinit's Go module, whose go.mod resolves the commands
// built into the image (MCINIT_SRC overrides).
func moduleRoot() (string, error) {
	if d := os.Getenv("MCINIT_SRC"); d != "" {
		return d, nil
	}
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/mcinit/mcinit\n")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("not inside the mcinit source tree: run from it or set MCINIT_SRC")
		}
		d = parent
	}
}
