package rollback

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/simulator"

	"github.com/mcinit/mcinit/tpmdev"
	"github.com/mcinit/mcinit/tpmdev/swtpm"
)

func TestFloorSimulator(t *testing.T) {
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if _, _, err := ReadFloor(sim, DefaultIndex); err == nil {
		t.Fatal("ReadFloor of an undefined index succeeded")
	}
	if err := Provision(sim, DefaultIndex, nil, 0); err != nil {
		t.Fatal(err)
	}
	if f, w, err := ReadFloor(sim, DefaultIndex); err != nil || w || f != 0 {
		t.Fatalf("fresh floor: %d %v %v", f, w, err)
	}
	steps := []struct{ raise, want uint64 }{{20261201, 20261201}, {5, 20261201}, {20270101, 20270101}}
	for _, s := range steps {
		if err := RaiseFloor(sim, DefaultIndex, s.raise); err != nil {
			t.Fatal(err)
		}
		if f, w, err := ReadFloor(sim, DefaultIndex); err != nil || !w || f != s.want {
			t.Fatalf("after raise to %d: %d %v %v", s.raise, f, w, err)
		}
	}
	if err := Check(20270101, true, 20261201); !errors.Is(err, ErrRollback) {
		t.Errorf("Check older: %v", err)
	}
	if err := Check(20270101, true, 20270101); err != nil {
		t.Errorf("Check equal: %v", err)
	}
	if err := Lock(sim, DefaultIndex); err != nil {
		t.Fatal(err)
	}
	if err := RaiseFloor(sim, DefaultIndex, 20280101); !errors.Is(err, ErrLocked) {
		t.Errorf("raise after lock: %v", err)
	}
	// Owner authorisation cannot write it either (no OWNERWRITE), locked or not.
	_, name, _ := public(sim, DefaultIndex)
	_, err = tpm2.NVWrite{AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		NVIndex: tpm2.NamedHandle{Handle: tpm2.TPMHandle(DefaultIndex), Name: name},
		Data:    tpm2.TPM2BMaxNVBuffer{Buffer: make([]byte, 8)}}.Execute(sim)
	if err == nil {
		t.Error("owner wrote the floor")
	}
	if f, _, _ := ReadFloor(sim, DefaultIndex); f != 20270101 {
		t.Errorf("floor changed to %d", f)
	}

	// An index with other attributes is refused.
	other := DefaultIndex + 1
	_, err = tpm2.NVDefineSpace{AuthHandle: tpm2.TPMRHOwner, PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
		NVIndex: tpm2.TPMIRHNVIndex(other), NameAlg: tpm2.TPMAlgSHA256, DataSize: 8,
		Attributes: tpm2.TPMANV{OwnerWrite: true, AuthWrite: true, AuthRead: true, OwnerRead: true, NoDA: true, NT: tpm2.TPMNTOrdinary}})}.Execute(sim)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadFloor(sim, other); err == nil || !strings.Contains(err.Error(), "attributes") {
		t.Errorf("mis-provisioned index: %v", err)
	}
}

// TestFloorSwtpm provisions with the documented tpm2-tools command and
// checks that a reboot (swtpm restart) lifts the write lock.
func TestFloorSwtpm(t *testing.T) {
	sw := swtpm.Start(t, swtpm.Config{})
	if _, err := sw.Tool("tpm2_nvdefine", "0x01504d43", "-C", "o", "-s", "8",
		"-a", "authread|authwrite|ownerread|no_da|write_stclear"); err != nil {
		t.Fatal(err)
	}
	boot := func(version uint64, wantCmds int) error {
		tpm := sw.Open()
		defer tpm.Close()
		n, err := bootPathCount(tpm, version)
		if n != wantCmds {
			t.Errorf("boot with policy %d: %d TPM commands, want %d", version, n, wantCmds)
		}
		return err
	}
	if err := boot(7, 3); err != nil { // unset: Read (uninitialized); Write, WriteLock
		t.Fatal(err)
	}
	tpm := sw.Open()
	err := RaiseFloor(tpm, DefaultIndex, 9) // the booted system tries
	tpm.Close()
	if !errors.Is(err, ErrLocked) {
		t.Errorf("booted system raised the floor: %v", err)
	}
	zero := filepath.Join(t.TempDir(), "zero")
	if err := os.WriteFile(zero, make([]byte, 8), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Tool("tpm2_nvwrite", "0x01504d43", "-C", "0x01504d43", "-i", zero); err == nil {
		t.Error("tpm2_nvwrite wrote a locked floor")
	} else if !strings.Contains(err.Error(), "lock") {
		t.Errorf("tpm2_nvwrite failed, but not because of the lock: %v", err)
	}
	sw.Restart()
	if err := boot(6, 1); !errors.Is(err, ErrRollback) { // Read
		t.Errorf("older policy after reboot: %v", err)
	}
	sw.Restart()
	if err := boot(8, 3); err != nil { // Read; Write, WriteLock
		t.Errorf("newer policy after reboot: %v", err)
	}
	out, err := sw.Tool("tpm2_nvread", "0x01504d43", "-C", "0x01504d43", "-s", "8")
	if err != nil || out != "\x00\x00\x00\x00\x00\x00\x00\x08" {
		t.Errorf("tpm2_nvread: %q %v", out, err)
	}
}

// bootPathCount is what /init does: read and check before deciding, then
// raise (production) and lock. It returns the TPM commands it used.
func bootPathCount(tpm transport.TPM, version uint64) (int, error) {
	dt := tpmdev.WithDeadline(tpm, tpmdev.DefaultTimeout)
	f, err := Read(dt, DefaultIndex)
	if err != nil {
		return dt.Commands(), err
	}
	if err := Check(f.Version, f.Written, version); err != nil {
		return dt.Commands(), err
	}
	err = f.Settle(dt, version, true)
	return dt.Commands(), err
}

func TestBootPathCommands(t *testing.T) {
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if err := Provision(sim, DefaultIndex, nil, 0); err != nil {
		t.Fatal(err)
	}
	// First boot: Read (uninitialized), Write, WriteLock.
	if n, err := bootPathCount(sim, 5); err != nil || n != 3 {
		t.Errorf("first boot: %d commands, %v", n, err)
	}
	// The same boot again without a TPM reset: the index is locked, the
	// version equal: Read and a WriteLock that is a no-op.
	if n, err := bootPathCount(sim, 5); err != nil || n != 2 {
		t.Errorf("second boot, same version: %d commands, %v", n, err)
	}
	if _, err := bootPathCount(sim, 6); !errors.Is(err, ErrLocked) {
		t.Errorf("raising a locked floor: %v, want ErrLocked", err)
	}
	if _, err := Read(sim, DefaultIndex+1); err == nil || !strings.Contains(err.Error(), "not provisioned") {
		t.Errorf("missing index: %v", err)
	}
}

// TestSettleMisprovisioned: an index without write_stclear cannot be
// locked until reboot; Settle fails (and /init refuses in production).
func TestSettleMisprovisioned(t *testing.T) {
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	attrs := Attributes()
	attrs.WriteSTClear = false
	_, err = tpm2.NVDefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{NVIndex: tpm2.TPMIRHNVIndex(DefaultIndex), NameAlg: tpm2.TPMAlgSHA256, Attributes: attrs, DataSize: 8}),
	}.Execute(sim)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Read(sim, DefaultIndex)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Settle(sim, 1, true); err == nil || !strings.Contains(err.Error(), "TPM2_NV_WriteLock") {
		t.Errorf("Settle on an index without write_stclear: %v, want a WriteLock failure", err)
	}
	if _, _, err := ReadFloor(sim, DefaultIndex); err == nil {
		t.Error("ReadFloor accepted a misprovisioned index")
	}
}
