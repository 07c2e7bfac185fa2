package harness

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const sampleLog = "\x1b[0m[    0.000000] Linux version 6.1.0\r\n" +
	"[    2.671314] Run /init as init process\r\n" +
	"mcinit: board qemu-x86_64\r\n" +
	"[    2.700001] mcinit: profile production\r\n" +
	"[    3.132606] testinit: started\r\n" +
	"MCINIT-TEST-BEGIN\r\n" +
	"kmsg_init_ts=3.132606\r\n" +
	"profile=production\r\n" +
	"file.summary.b64=aGVsbG8Kd29ybGQ=\r\n" +
	"mount./=erofs /dev/mapper/root ro\r\n" +
	"MCINIT-TEST-END\r\n" +
	"[    3.300000] reboot: Power down\r\n"

func TestParseLog(t *testing.T) {
	l := ParseLog([]byte(sampleLog))
	if !l.ReportComplete {
		t.Fatal("report not complete")
	}
	want := map[string]string{
		"kmsg_init_ts":     "3.132606",
		"profile":          "production",
		"file.summary.b64": "aGVsbG8Kd29ybGQ=",
		"mount./":          "erofs /dev/mapper/root ro",
	}
	if !reflect.DeepEqual(l.Report, want) {
		t.Errorf("report = %v", l.Report)
	}
	if v, ok := l.Value("file.summary"); !ok || v != "hello\nworld" {
		t.Errorf("Value(file.summary) = %q %v", v, ok)
	}
	if len(l.Mcinit) != 2 || l.Mcinit[0].HasTS || l.Mcinit[1].TS != 2700001*time.Microsecond {
		t.Errorf("mcinit lines = %+v", l.Mcinit)
	}
	ln, ok := l.FirstStamped("Run /init")
	if !ok || ln.TS != 2671314*time.Microsecond {
		t.Errorf("Run /init at %v %v", ln.TS, ok)
	}
	if ts, ok := l.KmsgInitTS(); !ok || ts != 3132606*time.Microsecond {
		t.Errorf("KmsgInitTS = %v %v", ts, ok)
	}
	if d, ok := l.InitToRealInit(); !ok || d != 461292*time.Microsecond {
		t.Errorf("InitToRealInit = %v %v", d, ok)
	}
	// A report cut short is marked incomplete.
	l = ParseLog([]byte("MCINIT-TEST-BEGIN\nprofile=x\n"))
	if l.ReportComplete || l.Report["profile"] != "x" {
		t.Errorf("truncated report: complete %v, %v", l.ReportComplete, l.Report)
	}
}

func TestParseStamp(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0.000000": 0, "12.5": 12500 * time.Millisecond, "1.000000001": time.Second + 1,
	} {
		if got, ok := parseStamp(in); !ok || got != want {
			t.Errorf("parseStamp(%q) = %v %v, want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "1", ".5", "1.", "-1.0", "1.0000000001", "x.1"} {
		if _, ok := parseStamp(in); ok {
			t.Errorf("parseStamp(%q) accepted", in)
		}
	}
}

func FuzzParseLog(f *testing.F) {
	f.Add([]byte(sampleLog))
	f.Fuzz(func(t *testing.T, b []byte) {
		l := ParseLog(b)
		for k := range l.Report {
			l.Value(k)
		}
		l.KmsgInitTS()
	})
}

func TestQEMUArgs(t *testing.T) {
	m := Machine{Kernel: "K", Initrd: "I", Disk: "D", DiskSnapshot: true, Append: "x=1",
		SMBIOS: []string{"type=1,product=P"}, Icount: true, MemoryMB: 256}
	a := strings.Join(qemuArgs("amd64", m, "/s", ""), " ")
	for _, want := range []string{
		"-M q35", "-accel tcg", "-m 256", "-nic none", "-no-reboot", "-kernel K", "-initrd I",
		"-append console=ttyS0 panic=-1 printk.time=1 no_timer_check x=1",
		"-drive file=D,format=raw,if=none,id=d0,cache=unsafe,snapshot=on -device virtio-blk-pci,drive=d0",
		"-smbios type=1,product=P", "-device tpm-tis,tpmdev=tpm0", "-icount shift=0,sleep=off",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("amd64 args lack %q: %s", want, a)
		}
	}
	a = strings.Join(qemuArgs("arm64", Machine{Kernel: "K", DTB: "T"}, "/s", "out.dtb"), " ")
	for _, want := range []string{"-M virt,dumpdtb=out.dtb", "console=ttyAMA0", "-dtb T", "-device tpm-tis-device,tpmdev=tpm0"} {
		if !strings.Contains(a, want) {
			t.Errorf("arm64 args lack %q: %s", want, a)
		}
	}
	if strings.Contains(a, "no_timer_check") {
		t.Errorf("arm64 args carry x86's no_timer_check: %s", a)
	}
}

func TestEditDTBCompatible(t *testing.T) {
	dir := t.TempDir()
	dts := filepath.Join(dir, "in.dts")
	os.WriteFile(dts, []byte(`/dts-v1/;
/ { compatible = "linux,dummy-virt"; #address-cells = <2>; #size-cells = <2>;
    chosen { bootargs = "x"; }; };
`), 0o644)
	in := filepath.Join(dir, "in.dtb")
	if out, err := exec.Command("dtc", "-q", "-I", "dts", "-O", "dtb", "-o", in, dts).CombinedOutput(); err != nil {
		t.Fatalf("dtc: %v %s", err, out)
	}
	out := filepath.Join(dir, "out.dtb")
	if err := EditDTBCompatible(in, out, []string{"fsl,imx8mq-evk", "fsl,imx8mq"}, `NXP "EVK"`); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command("dtc", "-q", "-I", "dtb", "-O", "dts", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`compatible = "fsl,imx8mq-evk\0fsl,imx8mq";`, `model = "NXP \"EVK\"";`, `bootargs = "x";`} {
		if !strings.Contains(s, want) {
			t.Errorf("edited tree lacks %s:\n%s", want, s)
		}
	}
	if strings.Contains(s, "dummy-virt") {
		t.Errorf("old compatible left:\n%s", s)
	}
	if err := EditDTBCompatible(in, out, []string{"bad\nvalue"}, ""); err == nil {
		t.Error("accepted a newline in a compatible string")
	}
	if err := EditDTBCompatible(in, out, nil, ""); err == nil {
		t.Error("accepted an empty compatible list")
	}
}

func TestWriteInitramfs(t *testing.T) {
	dir := t.TempDir()
	init := filepath.Join(dir, "init-bin")
	os.WriteFile(init, []byte("#!/bin/sh\n"), 0o755)
	out := filepath.Join(dir, "a.cpio")
	if err := WriteInitramfs(out, init, map[string]string{"/usr/bin/x": init}); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(dir, "b.cpio")
	WriteInitramfs(out2, init, map[string]string{"usr/bin/x": init})
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if !bytes.Equal(a, b) {
		t.Error("two builds differ")
	}
	cmd := exec.Command("cpio", "-it")
	cmd.Stdin = bytes.NewReader(a)
	list, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "dev\ndev/console\ninit\nproc\nrun\nsys\ntmp\nusr\nusr/bin\nusr/bin/x\n"
	if string(list) != want {
		t.Errorf("cpio -it:\n%s\nwant:\n%s", list, want)
	}
}

func TestKernelFromTree(t *testing.T) {
	pkg := t.TempDir()
	os.MkdirAll(filepath.Join(pkg, "lib/modules/6.1.0-test"), 0o755)
	os.MkdirAll(filepath.Join(pkg, "boot"), 0o755)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("raw arm64 Image"))
	zw.Close()
	os.WriteFile(filepath.Join(pkg, "boot/vmlinuz-6.1.0-test"), gz.Bytes(), 0o644)
	k, mods, kver, err := KernelFromTree(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if kver != "6.1.0-test" || mods != filepath.Join(pkg, "lib/modules/6.1.0-test") {
		t.Errorf("kver %q mods %q", kver, mods)
	}
	if b, _ := os.ReadFile(k); string(b) != "raw arm64 Image" {
		t.Errorf("decompressed image = %q", b)
	}
	if _, _, _, err := KernelFromTree(t.TempDir()); err == nil {
		t.Error("accepted a tree without modules")
	}
}
