package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestVerityFormatLikeVeritysetup checks that `mcinit verity format` prints
// what veritysetup prints and writes the same hash device.
func TestVerityFormatLikeVeritysetup(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	b := make([]byte, 200*4096)
	for i := range b {
		b[i] = byte(i / 4096)
	}
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--salt", "abcd", "--uuid", "11111111-2222-4333-8444-555555555555"},
		{"--hash=sha512", "--salt=-", "--no-superblock"},
		{"--data-block-size", "1024", "--hash-block-size", "512", "--salt", "00", "--uuid", "11111111-2222-4333-8444-555555555555", "--data-blocks", "77"},
	} {
		vh, mh := filepath.Join(dir, "v.hash"), filepath.Join(dir, "m.hash")
		os.Remove(vh)
		os.Remove(mh)
		want, err := exec.Command("veritysetup", append(append([]string{"format"}, args...), data, vh)...).CombinedOutput()
		if err != nil {
			t.Fatalf("veritysetup %v (Debian cryptsetup-bin): %v\n%s", args, err, want)
		}
		// Flags after the positional arguments, as veritysetup allows.
		var got bytes.Buffer
		if err := verityFormat(&got, append([]string{data, mh}, args...)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if g, w := got.String(), strings.ReplaceAll(string(want), vh, mh); g != w {
			t.Errorf("%v: output\n%s\nveritysetup:\n%s", args, g, w)
		}
		vb, _ := os.ReadFile(vh)
		mb, _ := os.ReadFile(mh)
		if !bytes.Equal(vb, mb) {
			t.Errorf("%v: hash devices differ", args)
		}
		root := regexp.MustCompile(`Root hash:\s+(\S+)`).FindStringSubmatch(got.String())[1]
		vargs := []string{data, vh, root}
		if strings.Contains(strings.Join(args, " "), "no-superblock") {
			vargs = append(vargs, "--no-superblock", "--hash", "sha512", "--salt", "-")
		}
		if err := verityVerify(vargs); err != nil {
			t.Errorf("%v: verify: %v", args, err)
		}
	}
}

func TestVerityVerifyRejects(t *testing.T) {
	dir := t.TempDir()
	data, hash := filepath.Join(dir, "data"), filepath.Join(dir, "hash")
	if err := os.WriteFile(data, make([]byte, 300*4096), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := verityFormat(&out, []string{"--salt", "-", data, hash}); err != nil {
		t.Fatal(err)
	}
	root := regexp.MustCompile(`Root hash:\s+(\S+)`).FindStringSubmatch(out.String())[1]
	b, _ := os.ReadFile(data)
	b[299*4096+5] = 1
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	err := verityVerify([]string{data, hash, root})
	var re rejectedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "data block 299") {
		t.Fatalf("corrupted block: %v", err)
	}
	if code := exitCode("verity", err); code != exitRejected {
		t.Fatalf("exit code %d", code)
	}
	var ue usageError
	for _, args := range [][]string{{data, hash}, {data, hash, "zz"}, {"--format", "0", data, hash, root}, {"--bogus", data, hash, root}} {
		if err := verityVerify(args); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if err := verityVerify([]string{"--hash", "sha512", data, hash, root}); err == nil || errors.As(err, &re) {
		t.Errorf("algorithm disagreeing with the superblock: %v", err)
	}
}
