package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/mcinit/mcinit/internal/boundedfile"
)

// Bounds on what the report copies, so a large /run/mcinit cannot flood
// the console.
const (
	maxInline    = 200     // values longer than this, or not one printable line, go base64
	maxFileBytes = 1 << 20 // per /run/mcinit file
	maxRunFiles  = 64
)

// reporter writes key=value lines.
type reporter struct{ w io.Writer }

// kv writes key=value when value is one short printable line, and
// key.b64=<base64> otherwise.
func (r *reporter) kv(key, value string) {
	if printableLine(value) && len(value) <= maxInline {
		fmt.Fprintf(r.w, "%s=%s\n", key, value)
		return
	}
	fmt.Fprintf(r.w, "%s.b64=%s\n", key, base64.StdEncoding.EncodeToString([]byte(value)))
}

// b64 always writes key.b64=<base64>, for exact bytes.
func (r *reporter) b64(key string, data []byte) {
	fmt.Fprintf(r.w, "%s.b64=%s\n", key, base64.StdEncoding.EncodeToString(data))
}

func printableLine(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// sys holds the paths the report reads, so tests can point it at a tree.
type sys struct {
	root, proc, sys, run string
}

func (s sys) report(r *reporter) {
	if up, err := readSmall(s.proc+"/uptime", 256); err == nil {
		if f := strings.Fields(up); len(f) > 0 {
			r.kv("uptime", f[0])
		}
	} else {
		r.kv("uptime", "error: "+errName(err))
	}
	if p, err := readSmall(s.run+"/mcinit/profile", 256); err == nil {
		r.kv("profile", strings.TrimSpace(p))
	} else {
		r.kv("profile", "absent")
	}
	s.identity(r)
	s.firmware(r)
	s.runFiles(r)
	s.mounts(r)
	if v, err := readSmall(s.proc+"/sys/kernel/modules_disabled", 16); err == nil {
		r.kv("modules_disabled", strings.TrimSpace(v))
	} else {
		r.kv("modules_disabled", "error: "+errName(err))
	}
	if err := s.rootWritable(); err != nil {
		r.kv("root_writable", "no")
		r.kv("root_writable_error", errName(err))
	} else {
		r.kv("root_writable", "yes")
	}
	if m, err := readSmall(filepath.Join(s.root, "var/mcinit-marker"), 4096); err == nil {
		r.kv("marker", m)
	} else {
		r.kv("marker", "absent")
	}
}

// secureBootVar is the UEFI global variable SecureBoot in efivarfs: four
// attribute bytes, then 1 when Secure Boot is enforcing.
const secureBootVar = "/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// firmware reports the kernel command line as booted, whether the kernel
// booted through EFI, the SecureBoot variable when efivarfs is available
// (a module in Debian's kernels, so not in a production boot) and the
// kernel's lockdown state, which Debian's kernels raise to "integrity"
// when Secure Boot is on.
func (s sys) firmware(r *reporter) {
	if c, err := readSmall(s.proc+"/cmdline", 4096); err == nil {
		r.kv("cmdline", strings.TrimRight(c, "\n"))
	}
	if l, err := s.readMounting(s.sys+"/kernel/security/lockdown", "securityfs", s.sys+"/kernel/security"); err == nil {
		r.kv("lockdown", strings.TrimSpace(l))
	} else {
		r.kv("lockdown", "error: "+errName(err))
	}
	if _, err := os.Stat(s.sys + "/firmware/efi"); err != nil {
		r.kv("efi", "no")
		return
	}
	r.kv("efi", "yes")
	v, err := s.readMounting(s.sys+secureBootVar, "efivarfs", s.sys+"/firmware/efi/efivars")
	switch {
	case err != nil:
		r.kv("secureboot", "error: "+errName(err))
	case len(v) == 5:
		r.kv("secureboot", strconv.Itoa(int(v[4])))
	default:
		r.kv("secureboot", "error: "+strconv.Itoa(len(v))+" bytes")
	}
}

// readMounting reads a small file, mounting fstype (read-only) at dir
// first when the file is not there.
func (s sys) readMounting(path, fstype, dir string) (string, error) {
	v, err := readSmall(path, 4096)
	if errors.Is(err, fs.ErrNotExist) {
		if unix.Mount(fstype, dir, fstype, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "") == nil {
			v, err = readSmall(path, 4096)
		}
	}
	return v, err
}

// identity reports the board identity the booted system sees: the device
// tree's root compatible list and model, or DMI vendor and product.
func (s sys) identity(r *reporter) {
	if c, err := readSmall(s.proc+"/device-tree/compatible", 4096); err == nil {
		r.kv("dt_compatible", strings.Join(strings.FieldsFunc(c, func(c rune) bool { return c == 0 }), ","))
	}
	if m, err := readSmall(s.proc+"/device-tree/model", 4096); err == nil {
		r.kv("dt_model", strings.TrimRight(m, "\x00"))
	}
	for _, f := range []string{"sys_vendor", "product_name"} {
		if v, err := readSmall(s.sys+"/class/dmi/id/"+f, 4096); err == nil {
			r.kv("dmi_"+f, strings.TrimSpace(v))
		}
	}
}

// runFiles reports every regular file under /run/mcinit, by path relative
// to it: small text inline, the rest base64.
func (s sys) runFiles(r *reporter) {
	dir := s.run + "/mcinit"
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// The development overlay's layers live under /run/mcinit; they
		// are the root's files, not mcinit's report.
		if d.IsDir() && p != dir && (d.Name() == "lower" || d.Name() == "upperfs" || d.Name() == "upper") {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		if len(names) >= maxRunFiles {
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.kv("run_mcinit", "error: "+errName(err))
	}
	if len(names) == 0 {
		r.kv("run_mcinit", "absent")
		return
	}
	sort.Strings(names)
	r.kv("run_mcinit", strings.Join(names, ","))
	for _, n := range names {
		b, err := readSmall(filepath.Join(dir, n), maxFileBytes)
		if err != nil {
			r.kv("file."+n, "error: "+errName(err))
			continue
		}
		r.kv("file."+n, strings.TrimSuffix(b, "\n"))
	}
}

// mounts reports the root mount (source, fstype, ro/rw) and every mount as
// mount.<mountpoint>=<fstype> <source> <options>.
func (s sys) mounts(r *reporter) {
	b, err := boundedfile.ReadPath(s.proc+"/self/mountinfo", 1<<20)
	if err != nil {
		r.kv("mounts", "error: "+errName(err))
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		m, ok := parseMountinfo(sc.Text())
		if !ok {
			continue
		}
		n++
		if m.point == "/" {
			// The last mount on / is the visible one.
			r.kv("root.source", m.source)
			r.kv("root.fstype", m.fstype)
			r.kv("root.mode", m.mode())
		}
		r.kv("mount."+m.point, m.fstype+" "+m.source+" "+m.options)
	}
	r.kv("mounts", strconv.Itoa(n))
}

// mountinfo is one line of /proc/self/mountinfo.
type mountinfo struct {
	point, options, fstype, source string
}

// mode is "ro" or "rw" from the per-mount options.
func (m mountinfo) mode() string {
	for _, o := range strings.Split(m.options, ",") {
		if o == "ro" {
			return "ro"
		}
	}
	return "rw"
}

// parseMountinfo parses "id parent maj:min root point options [tags] - fstype source superopts".
func parseMountinfo(line string) (mountinfo, bool) {
	f := strings.Fields(line)
	sep := -1
	for i, x := range f {
		if x == "-" && i >= 6 {
			sep = i
			break
		}
	}
	if sep < 0 || len(f) < sep+3 {
		return mountinfo{}, false
	}
	return mountinfo{point: f[4], options: f[5], fstype: f[sep+1], source: f[sep+2]}, true
}

// rootWritable tries to create a file in the root.
func (s sys) rootWritable() error {
	p := filepath.Join(s.root, ".testinit-probe")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(p)
}

// readSmall reads a file of at most limit bytes as text.
func readSmall(path string, limit int64) (string, error) {
	b, err := boundedfile.ReadPath(path, limit)
	return string(b), err
}

// errName gives the errno name (EIO, EROFS, ...) when there is one.
func errName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
	}
	return err.Error()
}

// kmsgStamp writes msg to /dev/kmsg and reads it back to learn its kernel
// timestamp, in seconds as the console prints it.
func kmsgStamp(msg string) (string, error) {
	w, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	_, err = w.WriteString(msg + "\n")
	w.Close()
	if err != nil {
		return "", err
	}
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	buf := make([]byte, 8192)
	found := ""
	for i := 0; i < 100000; i++ {
		n, err := unix.Read(fd, buf)
		if err == unix.EPIPE {
			continue // overwritten records: keep reading
		}
		if err != nil || n <= 0 {
			break
		}
		if us, text, ok := parseKmsg(string(buf[:n])); ok && text == msg {
			found = fmt.Sprintf("%d.%06d", us/1e6, us%1e6)
		}
	}
	if found == "" {
		return "", errors.New("own kmsg record not found")
	}
	return found, nil
}

// parseKmsg parses one /dev/kmsg record "prio,seq,usec,flags[,...];text\n...".
func parseKmsg(rec string) (usec uint64, text string, ok bool) {
	head, rest, ok := strings.Cut(rec, ";")
	if !ok {
		return 0, "", false
	}
	f := strings.Split(head, ",")
	if len(f) < 3 {
		return 0, "", false
	}
	usec, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return 0, "", false
	}
	text, _, _ = strings.Cut(rest, "\n")
	return usec, text, true
}
