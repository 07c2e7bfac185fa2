package identity

import (
	"bytes"
	"testing"

	"github.com/u-root/u-root/pkg/dt"
)

// BenchmarkFromDTB times identification of QEMU's virt tree (what /init
// reads on the aarch64 e2e machine) against parsing it with dt.ReadFDT
// alone.
func BenchmarkFromDTB(b *testing.B) {
	blob := readTestdata(b, "qemu-virt.dtb")
	b.Run("baseline=dt.ReadFDT", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := dt.ReadFDT(bytes.NewReader(blob)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("FromDTB", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := FromDTB(blob); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFromSMBIOS times identification from QEMU's captured tables.
func BenchmarkFromSMBIOS(b *testing.B) {
	ep, table := readTestdata(b, "qemu-q35-e2e.ep"), readTestdata(b, "qemu-q35-e2e.dmi")
	for i := 0; i < b.N; i++ {
		if _, err := FromSMBIOS(ep, table); err != nil {
			b.Fatal(err)
		}
	}
}
