package identity

import (
	"math/rand"
	"testing"
	"time"
)

func TestSlowDTB(t *testing.T) {
	seed := readTestdata(t, "qemu-virt.dtb")
	r := rand.New(rand.NewSource(1))
	var worst time.Duration
	for i := 0; i < 20000; i++ {
		b := append([]byte(nil), seed...)
		for j := 0; j < 1+r.Intn(4); j++ {
			b[r.Intn(len(b))] = byte(r.Intn(256))
		}
		st := time.Now()
		FromDTB(b)
		if d := time.Since(st); d > worst {
			worst = d
			t.Logf("iter %d: %v", i, d)
		}
	}
}
