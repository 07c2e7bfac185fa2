package fwlog

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/measure"
)

// The logs in testdata were captured from Debian 12's OVMF (4M, secboot
// code with the snakeoil variables, or plain code and variables) under QEMU
// TCG with swtpm (four banks), read inside the guest from
// /sys/kernel/security/tpm0/binary_bios_measurements; the .pcrs files hold
// /sys/class/tpm/tpm0/pcr-<bank>/<n> read in the same boot.
//   - direct-*: QEMU -kernel (OVMF's direct kernel boot), kernel signed
//     with the snakeoil key;
//   - uki-sb-on, uki-sb-off: a UKI (Debian's systemd 252 stub, sections .osrel .cmdline
//     .linux .initrd) signed with the snakeoil key (unsigned for sb-off) at \EFI\BOOT\BOOTX64.EFI.
var captured = []struct {
	name       string
	secureBoot bool
	apps       int
	stub       int
}{
	{"ovmf-x86_64-direct-sb-on", true, 0, 0},
	{"ovmf-x86_64-direct-sb-off", false, 1, 0}, // OVMF measures the -kernel image only with SB off
	{"ovmf-x86_64-uki-sb-on", true, 1, 8},
	{"ovmf-x86_64-uki-sb-off", false, 2, 8}, // the same UKI, unsigned; with SB off the 252 stub LoadImage()s its kernel
}

func load(t *testing.T, name string) (*Log, map[string]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	f, err := os.Open(filepath.Join("testdata", name+".pcrs"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pcrs := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		pcrs[k] = v
	}
	return l, pcrs
}

func TestCapturedLogsReplay(t *testing.T) {
	for _, c := range captured {
		l, pcrs := load(t, c.name)
		if len(l.Banks) != 4 {
			t.Errorf("%s: banks %v", c.name, l.Banks)
		}
		for pcr := 0; pcr < 24; pcr++ {
			for _, h := range l.Banks {
				key := measure.BankName(h) + ":" + strconv.Itoa(pcr)
				got := hex.EncodeToString(l.Replay(pcr)[h])
				if !l.Has(pcr) && pcrs[key] != got {
					continue // PCRs 17-22 start at all ones; no events there
				}
				if got != pcrs[key] {
					t.Errorf("%s: %s replays to %s, the TPM had %s", c.name, key, got, pcrs[key])
				}
			}
		}
	}
}

func TestCapturedSecureBoot(t *testing.T) {
	for _, c := range captured {
		l, _ := load(t, c.name)
		sb, err := l.SecureBoot()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if sb.Enabled != c.secureBoot {
			t.Errorf("%s: Secure Boot %v, want %v", c.name, sb.Enabled, c.secureBoot)
		}
		apps, err := l.BootApps()
		if err != nil || len(apps) != c.apps {
			t.Errorf("%s: %d boot apps (%v), want %d", c.name, len(apps), err, c.apps)
		}
		st, err := l.StubEvents(PCRStub)
		if err != nil || len(st) != c.stub {
			t.Errorf("%s: %d stub events (%v), want %d", c.name, len(st), err, c.stub)
		}
		if p, err := l.StubEvents(PCRStubParams); err != nil || len(p) != 0 {
			t.Errorf("%s: PCR 12 events %v (%v), want none", c.name, p, err)
		}
	}
	l, _ := load(t, "ovmf-x86_64-uki-sb-on")
	sb, _ := l.SecureBoot()
	if len(sb.Authorities) != 1 || !strings.HasPrefix(sb.Authorities[0], "db:sha256:") {
		t.Errorf("authorities %q, want one db certificate", sb.Authorities)
	}
	apps, _ := l.BootApps()
	// The UKI's Authenticode SHA-256 (sbverify/pesign agree; see docs).
	if got := hex.EncodeToString(apps[0].Digests[crypto.SHA256]); !strings.HasPrefix(got, "88ae3635961d2e6f") || !apps[0].AfterSeparator {
		t.Errorf("UKI app digest %s after separator %v", got, apps[0].AfterSeparator)
	}
	st, _ := l.StubEvents(PCRStub)
	var names []string
	for i := 0; i < len(st); i += 2 {
		names = append(names, st[i].Description)
		if st[i+1].Description != st[i].Description {
			t.Errorf("stub events %d,%d: %q then %q", i, i+1, st[i].Description, st[i+1].Description)
		}
		// The first event of each pair hashes the section name with its NUL.
		want := sha256.Sum256([]byte(st[i].Description + "\x00"))
		if !bytes.Equal(st[i].Digests[crypto.SHA256], want[:]) {
			t.Errorf("stub name event %q: digest is not the name's", st[i].Description)
		}
	}
	if strings.Join(names, " ") != ".linux .osrel .cmdline .initrd" {
		t.Errorf("stub sections %v", names)
	}
}

// mutate returns the log with the first occurrence of old replaced.
func mutate(t *testing.T, name string, old, new []byte) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, old)
	if i < 0 {
		t.Fatalf("%x not in %s", old, name)
	}
	return append(append(append([]byte{}, b[:i]...), new...), b[i+len(old):]...)
}

func TestSecureBootDataMustMatchDigest(t *testing.T) {
	// Flip the SecureBoot variable's value from 0 to 1 in the SB-off log:
	// the digests still say 0, so the state cannot be read.
	off := append(utf16le("SecureBoot"), 0)
	on := append(utf16le("SecureBoot"), 1)
	b := mutate(t, "ovmf-x86_64-direct-sb-off", off, on)
	l, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.SecureBoot(); err == nil || !strings.Contains(err.Error(), "not the hash of its variable data") {
		t.Fatalf("forged SecureBoot=1: %v", err)
	}
}

func TestParseVariableBounds(t *testing.T) {
	hdr := make([]byte, 32)
	for _, tc := range []struct {
		name          string
		nameLen, dLen uint64
		rest          int
	}{
		{"huge name", 1 << 62, 0, 4},
		{"overflow", 1 << 63, 1 << 63, 0},
		{"short", 2, 1, 4},
		{"long", 0, 0, 1},
	} {
		b := append([]byte{}, hdr...)
		putLE64(b[16:], tc.nameLen)
		putLE64(b[24:], tc.dLen)
		b = append(b, make([]byte, tc.rest)...)
		if _, err := ParseVariable(b); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func putLE64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (8 * i))
	}
}

func utf16le(s string) []byte {
	var b []byte
	for _, c := range s {
		b = append(b, byte(c), 0)
	}
	return b
}

func FuzzParse(f *testing.F) {
	for _, c := range captured {
		b, err := os.ReadFile(filepath.Join("testdata", c.name+".bin"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse(b)
		if err != nil {
			return
		}
		for pcr := 0; pcr < 24; pcr++ {
			_ = l.Replay(pcr)
		}
		sb, err := l.SecureBoot()
		if err == nil && sb.Enabled && sb.Variables["SecureBoot"] == "" {
			t.Fatal("enabled without a SecureBoot variable")
		}
		_, _ = l.BootApps()
		_, _ = l.StubEvents(PCRStub)
		_, _ = l.StubEvents(PCRStubParams)
	})
}
