//go:build tools

// Package tools pins modules that are used by the build (mkuimage builds
// u-root commands through this module's go.mod) but not imported by code.
package tools

import (
	_ "github.com/u-root/u-root/cmds/core/cat"
	_ "github.com/u-root/u-root/cmds/core/gosh"
	_ "github.com/u-root/u-root/cmds/core/ls"
)
