package attest

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/tpmdev/swtpm"
)

// TestSwtpmQuoteInterop: a quote of a production boot on swtpm passes
// tpm2_checkquote and our verifier; the documented tpm2-tools command
// recreates the same AK.
func TestSwtpmQuoteInterop(t *testing.T) {
	sw := swtpm.Start(t, swtpm.Config{Banks: "sha1,sha256,sha384"})
	nonce := []byte("checkquote-nonce")
	tpm := sw.Open()
	ev, ak, banks := record(t, tpm, bootFor(decide.Production).Events(), nonce)
	tpm.Close()
	dir := t.TempDir()
	if err := ev.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	back, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := Verify(back, known(), nonce, ak, unanchoredOK); err != nil {
		t.Fatalf("verify: %v\n%+v", err, v.Checks)
	}

	var list []string
	for _, h := range banks {
		list = append(list, measure.BankName(h)+":13")
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	args := []string{"tpm2_checkquote", "-u", p(FileAKPub), "-m", p(FileQuote), "-s", p(FileSig),
		"-f", p(FilePCRsBin), "-l", strings.Join(list, "+"), "-g", "sha256", "-q", hex.EncodeToString(nonce)}
	if out, err := sw.Tool(args...); err != nil {
		t.Fatalf("tpm2_checkquote rejected our quote: %v\n%s", err, out)
	}
	args[len(args)-1] = hex.EncodeToString([]byte("other nonce"))
	if _, err := sw.Tool(args...); err == nil {
		t.Error("tpm2_checkquote accepted a wrong nonce")
	}

	// The documented tpm2-tools command gives the same AK.
	ctx := p("ak.ctx")
	if _, err := sw.Tool("tpm2_createprimary", "-C", "e", "-g", "sha256", "-G", "ecc256:ecdsa-sha256:null",
		"-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign", "-c", ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Tool("tpm2_readpublic", "-c", ctx, "-f", "pem", "-o", p("ak-tools.pem")); err != nil {
		t.Fatal(err)
	}
	toolsPEM, _ := os.ReadFile(p("ak-tools.pem"))
	k2, err := ParsePublicPEM(toolsPEM)
	if err != nil || !k2.Equal(ak) {
		t.Errorf("tpm2_createprimary AK differs from ours (%v)", err)
	}
}

// TestSwtpmSealing is the user-visible value: a secret sealed with
// tpm2-tools to the predicted production PCR value unseals after a
// production boot and not after a development boot of the same TPM.
func TestSwtpmSealing(t *testing.T) {
	sw := swtpm.Start(t, swtpm.Config{})
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }

	pred, err := Predict(bootFor(decide.Production).Events(), 13, []crypto.Hash{crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("production-only secret")
	must := func(args ...string) string {
		t.Helper()
		out, err := sw.Tool(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	os.WriteFile(p("pcr.bin"), pred.Values[crypto.SHA256], 0o644)
	os.WriteFile(p("secret"), secret, 0o600)
	must("tpm2_createprimary", "-C", "o", "-g", "sha256", "-G", "ecc256:null:aes128cfb",
		"-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt", "-c", p("parent.ctx"))
	must("tpm2_createpolicy", "--policy-pcr", "-l", "sha256:13", "-f", p("pcr.bin"), "-L", p("pcr.policy"))
	must("tpm2_create", "-C", p("parent.ctx"), "-L", p("pcr.policy"), "-i", p("secret"), "-u", p("seal.pub"), "-r", p("seal.priv"))
	must("tpm2_flushcontext", "-t")
	pub, _ := os.ReadFile(p("seal.pub"))
	priv, _ := os.ReadFile(p("seal.priv"))

	boot := func(prof decide.Profile) ([]byte, error) {
		tpm := sw.Open()
		defer tpm.Close()
		if prof != "" {
			r, err := measure.NewRecorder(tpm, 13)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range bootFor(prof).Events() {
				if err := r.Record(ev); err != nil {
					t.Fatal(err)
				}
			}
		}
		return Unseal(tpm, pub, priv, 13, crypto.SHA256)
	}

	// Unseal loads the blob under our own primary: TPM2_Load only succeeds
	// if that is the very key tpm2_createprimary made (same template, same seed).
	must("tpm2_flushcontext", "-t")

	got, err := boot(decide.Production)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("production boot: unseal = %q, %v", got, err)
	}
	sw.Restart() // reboot: PCRs reset, seeds and the sealed blob stay valid
	if got, err := boot(decide.Development); err == nil {
		t.Fatalf("development boot unsealed the production secret: %q", got)
	} else {
		t.Logf("development boot: %v", err)
	}
	sw.Restart()
	if got, err := boot(decide.Production); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("second production boot: unseal = %q, %v", got, err)
	}
}
