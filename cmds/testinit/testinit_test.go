package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseActions(t *testing.T) {
	cl := `console=ttyS0 mcinit_test.actions=write-marker,read-file=/etc/x "mcinit_test.action=exec=/usr/bin/mcinit attest -n a,b" mcinit_test.actions=`
	got := parseActions(cl)
	want := []string{"write-marker", "read-file=/etc/x", "exec=/usr/bin/mcinit attest -n a,b"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseActions = %q, want %q", got, want)
	}
}

func TestSplitCmdline(t *testing.T) {
	got := splitCmdline(" a=\"b c\"  d\te=\"\" \"f g\"=h\n")
	want := []string{"a=b c", "d", "e=", "f g=h"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("splitCmdline = %q, want %q", got, want)
	}
}

func TestParseMountinfo(t *testing.T) {
	line := "22 1 254:0 / / ro,relatime shared:1 - erofs /dev/mapper/root ro,user_xattr"
	m, ok := parseMountinfo(line)
	if !ok || m.point != "/" || m.fstype != "erofs" || m.source != "/dev/mapper/root" || m.mode() != "ro" {
		t.Fatalf("parseMountinfo = %+v %v", m, ok)
	}
	if _, ok := parseMountinfo("1 2 3 - x"); ok {
		t.Fatal("short line accepted")
	}
}

func TestParseKmsg(t *testing.T) {
	us, text, ok := parseKmsg("4,312,1786543,-;testinit: started\n SUBSYSTEM=x\n")
	if !ok || us != 1786543 || text != "testinit: started" {
		t.Fatalf("parseKmsg = %d %q %v", us, text, ok)
	}
}

// TestReport runs the report against a fake /run/mcinit on the host.
func TestReport(t *testing.T) {
	run := t.TempDir()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(run, "mcinit/sub"), 0o755)
	os.WriteFile(filepath.Join(run, "mcinit/profile"), []byte("development\n"), 0o644)
	os.WriteFile(filepath.Join(run, "mcinit/summary"), []byte("line one\nline two\n"), 0o644)
	os.WriteFile(filepath.Join(run, "mcinit/sub/eventlog"), []byte{0, 1, 2, 0xff}, 0o644)
	var buf bytes.Buffer
	sys{root: root, proc: "/proc", sys: "/sys", run: run}.report(&reporter{w: &buf})
	out := buf.String()
	for _, want := range []string{
		"profile=development\n",
		"run_mcinit=profile,sub/eventlog,summary\n",
		"file.profile=development\n",
		"file.summary.b64=bGluZSBvbmUKbGluZSB0d28=\n",
		"file.sub/eventlog.b64=AAEC/w==\n",
		"root_writable=yes\n",
		"marker=absent\n",
		"root.fstype=",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if err := writeMarker(root, "hello"); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	sys{root: root, proc: "/proc", sys: "/sys", run: run}.report(&reporter{w: &buf})
	if !strings.Contains(buf.String(), "marker=hello\n") {
		t.Errorf("marker not reported:\n%s", buf.String())
	}
}

func TestActions(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, []byte("abc"), 0o644)
	var buf bytes.Buffer
	r := &reporter{w: &buf}
	runAction(r, 0, "read-file="+f)
	runAction(r, 1, "read-file=/nonexistent")
	runAction(r, 2, "exec=/bin/sh -c exit")
	runAction(r, 3, "exec=/bin/echo hi")
	runAction(r, 4, "bogus")
	out := buf.String()
	for _, want := range []string{
		"action.0.read-file=" + f + " sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad size=3\n",
		"action.1.read-file=/nonexistent error=ENOENT\n",
		"action.3.exec.rc=0\n",
		"action.3.exec.out.b64=aGkK\n",
		"action.4.bogus=error: unknown action\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}

func FuzzParseActions(f *testing.F) {
	f.Add(`mcinit_test.actions=a,b "mcinit_test.action=exec=/x y"`)
	f.Fuzz(func(t *testing.T, s string) {
		if len(parseActions(s)) > maxActions {
			t.Fatal("too many actions")
		}
	})
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add("22 1 254:0 / / ro,relatime shared:1 - erofs /dev/mapper/root ro")
	f.Fuzz(func(t *testing.T, s string) { parseMountinfo(s) })
}

func FuzzParseKmsg(f *testing.F) {
	f.Add("4,312,1786543,-;testinit: started\n")
	f.Fuzz(func(t *testing.T, s string) { parseKmsg(s) })
}

// TestWriteFileDumpDir: write-file hands bytes in, dump-dir hands them
// back out exactly (base64 always, binary or not).
func TestWriteFileDumpDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	var buf bytes.Buffer
	r := &reporter{w: &buf}
	runAction(r, 0, "write-file="+dir+"/blob:AAEC/w==")
	runAction(r, 1, "write-file="+dir+"/text:aGkK")
	runAction(r, 2, "write-file="+dir+"/bad:***")
	runAction(r, 3, "write-file=nocolon")
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	runAction(r, 4, "dump-dir="+dir)
	runAction(r, 5, "dump-dir=/nonexistent")
	out := buf.String()
	for _, want := range []string{
		"action.0.write-file=ok\n",
		"action.2.write-file=error: bad base64\n",
		"action.3.write-file=error: want PATH:BASE64\n",
		"action.4.dump-dir=blob,text\n",
		"action.4.dump-dir.blob.b64=AAEC/w==\n",
		"action.4.dump-dir.text.b64=aGkK\n",
		"action.5.dump-dir=error: ENOENT\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}

func FuzzParseWriteFile(f *testing.F) {
	f.Add("/run/seal/seal.pub:AAEC/w==")
	f.Fuzz(func(t *testing.T, s string) {
		path, data, err := parseWriteFile(s)
		if err == nil && (path == "" || len(data) > maxWriteFile) {
			t.Fatalf("parseWriteFile(%q) = %q, %d bytes", s, path, len(data))
		}
	})
}

func TestModuleActions(t *testing.T) {
	if got := moduleState("../etc"); got != "error: bad module name" {
		t.Errorf("moduleState(../etc) = %q", got)
	}
	if got := moduleState("mcinit_no_such_module"); got != "absent" {
		t.Errorf("moduleState of a missing module = %q", got)
	}
	if got := errResult(insmod("/nonexistent/x.ko")); got != "error: ENOENT" {
		t.Errorf("insmod of a missing file = %q", got)
	}
	if got := errResult(nil); got != "ok" {
		t.Errorf("errResult(nil) = %q", got)
	}
}
