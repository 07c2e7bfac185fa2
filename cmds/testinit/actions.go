package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	actionsParam = "mcinit_test.actions" // comma-separated list
	actionParam  = "mcinit_test.action"  // one action, may contain commas
	execTimeout  = 60 * time.Second
	maxActions   = 32
	maxExecOut   = 256 << 10
	maxWriteFile = 64 << 10 // decoded size of a write-file action
	markerPath   = "var/mcinit-marker"
)

// parseActions returns the actions named on the kernel command line, in
// order of appearance.
func parseActions(cmdline string) []string {
	var acts []string
	for _, p := range splitCmdline(cmdline) {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case actionsParam:
			for _, a := range strings.Split(v, ",") {
				if a = strings.TrimSpace(a); a != "" {
					acts = append(acts, a)
				}
			}
		case actionParam:
			if v != "" {
				acts = append(acts, v)
			}
		}
	}
	if len(acts) > maxActions {
		acts = acts[:maxActions]
	}
	return acts
}

// splitCmdline splits a kernel command line the way the kernel does:
// whitespace separates parameters, double quotes group and are removed.
func splitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// runAction runs one action and reports its outcome as
// action.<i>.<name>[.<field>]=... lines.
func runAction(r *reporter, i int, a string) {
	name, arg, _ := strings.Cut(a, "=")
	key := "action." + strconv.Itoa(i) + "." + name
	switch name {
	case "write-marker":
		if arg == "" {
			arg = "mcinit-marker"
		}
		if err := writeMarker("/", arg); err != nil {
			r.kv(key, "error: "+errName(err))
			return
		}
		r.kv(key, "ok")
	case "read-file":
		r.kv(key, arg+" "+hashFile(arg))
	case "exec":
		rc, out := runExec(arg)
		r.kv(key+".rc", rc)
		r.kv(key+".out", out)
	case "write-file":
		// PATH:BASE64 — hands a small input (a sealed blob, a challenge) to
		// the booted system; the command line is the only channel in.
		if err := writeFile(arg); err != nil {
			r.kv(key, "error: "+errName(err))
			return
		}
		r.kv(key, "ok")
	case "dump-dir":
		// Every regular file directly in DIR, always base64, so outputs
		// such as `mcinit attest -out DIR` reach the host byte for byte.
		dumpDir(r, key, arg)
	case "insmod":
		// PATH of a module file, loaded with finit_module(2) and no
		// parameters: enough to prove module loading is open or locked.
		r.kv(key, errResult(insmod(arg)))
	case "rmmod":
		r.kv(key, errResult(unix.DeleteModule(arg, unix.O_NONBLOCK)))
	case "module":
		// NAME's state: "live" (loaded), "absent", or the module's
		// initstate as the kernel reports it.
		r.kv(key, moduleState(arg))
	case "sleep":
		// For timeout tests: sleep the given seconds (bounded by the watchdog).
		d, err := strconv.Atoi(arg)
		if err != nil || d < 0 {
			r.kv(key, "error: bad seconds")
			return
		}
		time.Sleep(time.Duration(d) * time.Second)
		r.kv(key, "ok")
	default:
		r.kv(key, "error: unknown action")
	}
}

// errResult is "ok" for nil, else "error: <ERRNO>".
func errResult(err error) string {
	if err != nil {
		return "error: " + errName(err)
	}
	return "ok"
}

// insmod loads the module file at path.
func insmod(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.FinitModule(int(f.Fd()), "", 0)
}

// moduleState reads /sys/module/NAME/initstate.
func moduleState(name string) string {
	if name == "" || strings.ContainsAny(name, "/.") {
		return "error: bad module name"
	}
	s, err := readSmall("/sys/module/"+name+"/initstate", 64)
	if errors.Is(err, os.ErrNotExist) {
		return "absent"
	}
	if err != nil {
		return "error: " + errName(err)
	}
	return strings.TrimSpace(s)
}

// writeMarker creates root/var/mcinit-marker durably.
func writeMarker(root, content string) error {
	p := filepath.Join(root, markerPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	unix.Sync()
	return nil
}

// writeFile decodes "PATH:BASE64" and writes the bytes to PATH (mode 0600),
// creating its directory.
func writeFile(arg string) error {
	path, data, err := parseWriteFile(arg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// parseWriteFile splits "PATH:BASE64" (base64 has no colon) and decodes
// the content, at most maxWriteFile bytes.
func parseWriteFile(arg string) (path string, data []byte, err error) {
	i := strings.LastIndexByte(arg, ':')
	if i <= 0 {
		return "", nil, errors.New("want PATH:BASE64")
	}
	path, enc := arg[:i], arg[i+1:]
	if base64.StdEncoding.DecodedLen(len(enc)) > maxWriteFile {
		return "", nil, errors.New("content too large")
	}
	if data, err = base64.StdEncoding.DecodeString(enc); err != nil {
		return "", nil, errors.New("bad base64")
	}
	return path, data, nil
}

// dumpDir reports the regular files directly in dir as
// <key>=<names, comma-separated> and <key>.<name>.b64=<content> each.
func dumpDir(r *reporter, key, dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		r.kv(key, "error: "+errName(err))
		return
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && len(names) < maxRunFiles {
			names = append(names, e.Name())
		}
	}
	r.kv(key, strings.Join(names, ","))
	for _, n := range names {
		b, err := readSmall(filepath.Join(dir, n), maxFileBytes)
		if err != nil {
			r.kv(key+"."+n, "error: "+errName(err))
			continue
		}
		r.b64(key+"."+n, []byte(b))
	}
}

// hashFile returns "sha256=<hex> size=<n>" or "error=<ERRNO>".
func hashFile(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "error=" + errName(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "error=" + errName(err)
	}
	return fmt.Sprintf("sha256=%s size=%d", hex.EncodeToString(h.Sum(nil)), n)
}

// runExec runs "path arg..." (space-separated) with a timeout and returns
// its exit status and combined output (bounded).
func runExec(cmdline string) (rc, out string) {
	args := strings.Fields(cmdline)
	if len(args) == 0 {
		return "error: empty command", ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), execTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var buf limitedBuffer
	buf.max = maxExecOut
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		rc = "0"
	case errors.As(err, &ee):
		rc = strconv.Itoa(ee.ExitCode())
		if ctx.Err() != nil {
			rc = "timeout"
		}
	default:
		rc = "error: " + errName(err)
	}
	return rc, buf.String()
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}
