package diskimage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TypeESP is the EFI System Partition's GPT type (UEFI specification).
const TypeESP = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"

// VFAT is the Partition.Format of a FAT filesystem holding
// Partition.Files: an EFI System Partition when TypeUUID is TypeESP.
const VFAT = "vfat"

// ESP returns an EFI System Partition holding files (paths inside the
// ESP, slash-separated, e.g. EFI/BOOT/BOOTX64.EFI), sized to fit.
func ESP(files map[string][]byte) Partition {
	return Partition{Label: "esp", TypeUUID: TypeESP, Format: VFAT, Files: files}
}

// fatSize is a partition size that fits files with room for the FAT
// structures, at least 8 MiB.
func fatSize(files map[string][]byte) int64 {
	var n int64
	for _, b := range files {
		n += roundUp(int64(len(b)), 4096)
	}
	return roundUp(max(n+n/16+2*mib, 8*mib), align)
}

// makeFAT writes a FAT filesystem of size bytes holding files to img with
// dosfstools and mtools. Every value they would take from the clock or a
// random source is fixed (mkfs.fat --invariant and a volume ID from the
// content; directory and file times from SOURCE_DATE_EPOCH and the file
// mtimes), so the image is a function of the files only.
func makeFAT(img, label string, size int64, files map[string][]byte) error {
	names := make([]string, 0, len(files))
	for n := range files {
		clean := path.Clean(strings.TrimPrefix(n, "/"))
		if clean != strings.TrimPrefix(n, "/") || clean == "." || strings.HasPrefix(clean, "..") || strings.ContainsAny(n, "\\:\n") {
			return fmt.Errorf("diskimage: ESP path %q is not a clean relative path", n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	id := sha256.New()
	for _, n := range names {
		fmt.Fprintf(id, "%s\x00%d\x00", n, len(files[n]))
		id.Write(files[n])
	}
	volID := hex.EncodeToString(id.Sum(nil)[:4])
	if len(label) > 11 {
		label = label[:11]
	}
	env := append(os.Environ(), "SOURCE_DATE_EPOCH="+fixedTime, "MTOOLS_SKIP_CHECK=1")
	mkfs := exec.Command("mkfs.fat", "--invariant", "-C", "-i", volID, "-n", strings.ToUpper(label), img, strconv.FormatInt(size/1024, 10))
	mkfs.Env = env
	if err := runCmd(mkfs); err != nil {
		return err
	}
	src, err := os.MkdirTemp(filepath.Dir(img), ".esp-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	t, _ := strconv.ParseInt(fixedTime, 10, 64)
	made := map[string]bool{}
	for i, n := range names {
		n = strings.TrimPrefix(n, "/")
		// Parent directories first, each once.
		var dirs []string
		for d := path.Dir(n); d != "."; d = path.Dir(d) {
			dirs = append([]string{d}, dirs...)
		}
		for _, d := range dirs {
			if made[d] {
				continue
			}
			made[d] = true
			mmd := exec.Command("mmd", "-i", img, "::/"+d)
			mmd.Env = env
			if err := runCmd(mmd); err != nil {
				return err
			}
		}
		f := filepath.Join(src, strconv.Itoa(i))
		if err := os.WriteFile(f, files[names[i]], 0o644); err != nil {
			return err
		}
		if err := os.Chtimes(f, time.Unix(t, 0), time.Unix(t, 0)); err != nil {
			return err
		}
		mcopy := exec.Command("mcopy", "-m", "-i", img, f, "::/"+n)
		mcopy.Env = env
		if err := runCmd(mcopy); err != nil {
			return err
		}
	}
	return nil
}

// AddESP grows an existing GPT disk image by an EFI System Partition holding
// files, after its last partition, and returns the new partition. The
// partitions already there, and so their PARTUUIDs and contents, are left
// as they are: a verity disk keeps its root hash. Like Build it is a
// function of its inputs.
func AddESP(disk string, files map[string][]byte) (PartInfo, error) {
	st, err := os.Stat(disk)
	if err != nil {
		return PartInfo{}, err
	}
	out, err := exec.Command("sgdisk", "-p", disk).CombinedOutput()
	if err != nil {
		return PartInfo{}, fmt.Errorf("diskimage: sgdisk -p %s: %v: %s", disk, err, out)
	}
	last, lastEnd := 0, int64(0)
	inTable := false
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "Number" {
			inTable = true
			continue
		}
		if !inTable || len(f) < 3 {
			continue
		}
		n, err1 := strconv.Atoi(f[0])
		end, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		last = max(last, n)
		lastEnd = max(lastEnd, (end+1)*sectorSize)
	}
	if last == 0 {
		return PartInfo{}, fmt.Errorf("diskimage: %s has no GPT partitions", disk)
	}
	var digest [32]byte
	h := sha256.New()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(files[n]))
		h.Write(files[n])
	}
	copy(digest[:], h.Sum(nil))
	p := PartInfo{Number: last + 1, Label: "esp", TypeUUID: TypeESP, PartUUID: derivedUUID(digest, "esp"),
		Offset: roundUp(lastEnd, align), Size: fatSize(files)}
	tmp, err := os.MkdirTemp(filepath.Dir(disk), ".esp-*")
	if err != nil {
		return PartInfo{}, err
	}
	defer os.RemoveAll(tmp)
	img := filepath.Join(tmp, "esp.img")
	if err := makeFAT(img, p.Label, p.Size, files); err != nil {
		return PartInfo{}, err
	}
	if err := os.Truncate(disk, max(st.Size(), p.Offset+p.Size+align)); err != nil {
		return PartInfo{}, err
	}
	n := strconv.Itoa(p.Number)
	if err := run("sgdisk", "-e",
		"-n", fmt.Sprintf("%s:%d:%d", n, p.Offset/sectorSize, (p.Offset+p.Size)/sectorSize-1),
		"-t", n+":"+p.TypeUUID, "-c", n+":"+p.Label, "-u", n+":"+p.PartUUID, disk); err != nil {
		return PartInfo{}, err
	}
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return PartInfo{}, err
	}
	defer f.Close()
	if err := copyInto(f, img, p.Offset, p.Size); err != nil {
		return PartInfo{}, fmt.Errorf("diskimage: ESP: %w", err)
	}
	return p, f.Close()
}
