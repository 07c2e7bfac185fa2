package harness

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// WriteInitramfs writes an uncompressed newc archive to out holding init
// as /init, /dev/console, and files (archive path → host path, e.g.
// "sbin/init" → "/tmp/testinit"), all owned by root, with zero times and
// sorted entries. It is for harness tests and baselines; mcinit's own
// image comes from initramfs/.
func WriteInitramfs(out, init string, files map[string]string) error {
	all := map[string]string{"init": init}
	for k, v := range files {
		all[strings.TrimPrefix(path.Clean("/"+k), "/")] = v
	}
	dirs := map[string]bool{"dev": true, "proc": true, "sys": true, "run": true, "tmp": true}
	var names []string
	for name := range all {
		names = append(names, name)
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var recs []cpio.Record
	for d := range dirs {
		recs = append(recs, cpio.Directory(d, 0o755))
	}
	recs = append(recs, cpio.CharDev("dev/console", 0o600, 5, 1))
	for _, name := range names {
		b, err := os.ReadFile(all[name])
		if err != nil {
			return fmt.Errorf("initramfs file %s: %w", name, err)
		}
		recs = append(recs, cpio.StaticRecord(b, cpio.Info{Name: name, Mode: cpio.S_IFREG | 0o755}))
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := cpio.Newc.Writer(f)
	for i := range recs {
		recs[i] = cpio.MakeReproducible(recs[i])
	}
	if err := cpio.WriteRecords(w, recs); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return f.Close()
}
