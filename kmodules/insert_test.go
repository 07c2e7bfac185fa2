package kmodules

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestInsertFlags: InsertFile hands compressed modules to the kernel with
// MODULE_INIT_COMPRESSED_FILE (it cannot decompress them itself) and plain
// ones without flags; a name merely containing ".ko" is not compressed.
func TestInsertFlags(t *testing.T) {
	for _, c := range []struct {
		path       string
		flags      int
		compressed bool
	}{
		{"/lib/modules/r/kernel/drivers/md/dm-verity.ko", 0, false},
		{"/lib/modules/r/kernel/drivers/md/dm-verity.ko.xz", unix.MODULE_INIT_COMPRESSED_FILE, true},
		{"/lib/modules/r/kernel/drivers/md/dm-verity.ko.zst", unix.MODULE_INIT_COMPRESSED_FILE, true},
		{"/lib/modules/r/kernel/drivers/md/dm-verity.ko.gz", unix.MODULE_INIT_COMPRESSED_FILE, true},
		{"/lib/modules/r/kernel/x.ko.gz/plain.ko", 0, false},
	} {
		if f, c2 := insertFlags(c.path); f != c.flags || c2 != c.compressed {
			t.Errorf("insertFlags(%s) = %#x, %v; want %#x, %v", c.path, f, c2, c.flags, c.compressed)
		}
	}
}
