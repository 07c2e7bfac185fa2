// Package rollback keeps the lowest acceptable policy version (the floor)
// in a TPM NV index, so an image with an older, validly signed policy is
// refused.
//
// Design. Policy versions may jump (20261201), so a TPM_NT_COUNTER, which
// only counts up by one per command, cannot hold them. The floor is an
// ordinary 8-byte NV index (big-endian uint64) with
// AUTHREAD|AUTHWRITE|OWNERREAD|NO_DA|WRITE_STCLEAR and an empty auth value.
// /init reads it, refuses a policy below it, raises it after a verified
// production boot, and on every boot takes TPM2_NV_WriteLock before
// switch_root. WRITE_STCLEAR keeps that lock until the next TPM reset,
// which only a reboot causes, and the next boot runs /init first: the booted
// system can neither lower nor raise the floor. Deleting the index needs
// owner authorisation, so production devices must have the owner hierarchy
// auth set at provisioning (see docs/measurements.md).
package rollback

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// DefaultIndex is the suggested NV index ("MC" in the owner range).
const DefaultIndex uint32 = 0x01504D43

// Attributes is the exact NV attribute set of a floor index (without the
// state bits WRITTEN, WRITELOCKED, READLOCKED that the TPM flips).
func Attributes() tpm2.TPMANV {
	return tpm2.TPMANV{AuthWrite: true, AuthRead: true, OwnerRead: true, NoDA: true, WriteSTClear: true, NT: tpm2.TPMNTOrdinary}
}

// ErrRollback is wrapped by Check when a policy is older than the floor.
var ErrRollback = errors.New("policy rollback")

// ErrLocked is returned when the floor is write-locked (after /init ran).
var ErrLocked = errors.New("rollback floor is write-locked until the next reboot")

func checkIndex(index uint32) error {
	if index < 0x01000000 || index > 0x01FFFFFF {
		return fmt.Errorf("NV index %#x is not an NV index handle (0x01000000-0x01FFFFFF)", index)
	}
	return nil
}

// public reads the index's public area and checks it is a floor index.
func public(tpm transport.TPM, index uint32) (*tpm2.TPMSNVPublic, tpm2.TPM2BName, error) {
	if err := checkIndex(index); err != nil {
		return nil, tpm2.TPM2BName{}, err
	}
	rsp, err := tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(index)}.Execute(tpm)
	if err != nil {
		return nil, tpm2.TPM2BName{}, fmt.Errorf("rollback floor %#x: TPM2_NV_ReadPublic (not provisioned?): %w", index, err)
	}
	pub, err := rsp.NVPublic.Contents()
	if err != nil {
		return nil, tpm2.TPM2BName{}, fmt.Errorf("rollback floor %#x: %w", index, err)
	}
	attrs := pub.Attributes
	attrs.Written, attrs.WriteLocked, attrs.ReadLocked = false, false, false
	if attrs != Attributes() || pub.DataSize != 8 || pub.NameAlg != tpm2.TPMAlgSHA256 || len(pub.AuthPolicy.Buffer) != 0 {
		return nil, tpm2.TPM2BName{}, fmt.Errorf("rollback floor %#x: attributes %#x size %d are not those of an mcinit floor index (reprovision it)",
			index, tpm2.Marshal(pub.Attributes), pub.DataSize)
	}
	return pub, rsp.NVName, nil
}

func auth(index uint32, name tpm2.TPM2BName) tpm2.AuthHandle {
	return tpm2.AuthHandle{Handle: tpm2.TPMHandle(index), Name: name, Auth: tpm2.PasswordAuth(nil)}
}

// ReadFloor returns the floor and whether it was ever written. A defined
// but never written index (fresh provisioning) gives 0, false.
func ReadFloor(tpm transport.TPM, index uint32) (uint64, bool, error) {
	pub, name, err := public(tpm, index)
	if err != nil {
		return 0, false, err
	}
	if !pub.Attributes.Written {
		return 0, false, nil
	}
	rsp, err := tpm2.NVRead{AuthHandle: auth(index, name), NVIndex: tpm2.NamedHandle{Handle: tpm2.TPMHandle(index), Name: name}, Size: 8}.Execute(tpm)
	if err != nil {
		return 0, false, fmt.Errorf("rollback floor %#x: TPM2_NV_Read: %w", index, err)
	}
	if len(rsp.Data.Buffer) != 8 {
		return 0, false, fmt.Errorf("rollback floor %#x: read %d bytes", index, len(rsp.Data.Buffer))
	}
	return binary.BigEndian.Uint64(rsp.Data.Buffer), true, nil
}

// Check refuses a policy version below the floor.
func Check(floor uint64, written bool, version uint64) error {
	if written && version < floor {
		return fmt.Errorf("%w: policy version %d is older than the TPM's floor %d", ErrRollback, version, floor)
	}
	return nil
}

// RaiseFloor sets the floor to version if that is higher; it never lowers
// it. Call it only after the policy verified, on a production boot.
func RaiseFloor(tpm transport.TPM, index uint32, version uint64) error {
	floor, written, err := ReadFloor(tpm, index)
	if err != nil {
		return err
	}
	return settle(tpm, index, floor, written, version, true, false)
}

// Lock write-locks the floor until the next TPM reset.
func Lock(tpm transport.TPM, index uint32) error {
	return settle(tpm, index, 0, true, 0, false, true)
}

// Settle is the end of /init's rollback work, with the floor it read
// before deciding: on a production boot (raise) it raises the floor to
// version when higher, then it write-locks the index in every profile.
// It costs two or three TPM commands (ReadPublic, Write, WriteLock).
func Settle(tpm transport.TPM, index uint32, floor uint64, written bool, version uint64, raise bool) error {
	return settle(tpm, index, floor, written, version, raise, true)
}

func settle(tpm transport.TPM, index uint32, floor uint64, written bool, version uint64, raise, lock bool) error {
	pub, name, err := public(tpm, index)
	if err != nil {
		return err
	}
	if raise && (!written || version > floor) {
		if pub.Attributes.WriteLocked {
			return fmt.Errorf("rollback floor %#x: %w", index, ErrLocked)
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], version)
		_, err = tpm2.NVWrite{AuthHandle: auth(index, name), NVIndex: tpm2.NamedHandle{Handle: tpm2.TPMHandle(index), Name: name},
			Data: tpm2.TPM2BMaxNVBuffer{Buffer: b[:]}}.Execute(tpm)
		if err != nil {
			return fmt.Errorf("rollback floor %#x: TPM2_NV_Write: %w", index, err)
		}
		// The first write sets TPMA_NV_WRITTEN, which changes the Name.
		pub.Attributes.Written = true
		n, err := tpm2.NVName(pub)
		if err != nil {
			return fmt.Errorf("rollback floor %#x: %w", index, err)
		}
		name = *n
	}
	if !lock || pub.Attributes.WriteLocked {
		return nil
	}
	if _, err := (tpm2.NVWriteLock{AuthHandle: auth(index, name), NVIndex: tpm2.NamedHandle{Handle: tpm2.TPMHandle(index), Name: name}}).Execute(tpm); err != nil {
		return fmt.Errorf("rollback floor %#x: TPM2_NV_WriteLock: %w", index, err)
	}
	return nil
}

// Floor is a floor index as /init reads it before deciding, with what
// settling it needs: /init reads it once and settles it once.
type Floor struct {
	Index   uint32
	Version uint64 // the floor, when Written
	Written bool   // false: provisioned, never written (first boot)
}

// Read reads the floor with one TPM2_NV_Read (password session, empty
// auth): the boot path skips TPM2_NV_ReadPublic. An index that was
// provisioned but never written answers TPM_RC_NV_UNINITIALIZED: no
// floor yet. An index that is missing or misprovisioned fails here or,
// at the latest, in Settle; /init refuses either way in production.
// `mcinit rollback show` (ReadFloor) checks the attributes in full.
func Read(tpm transport.TPM, index uint32) (Floor, error) {
	f := Floor{Index: index}
	if err := checkIndex(index); err != nil {
		return f, err
	}
	nh := namedHandle(index, true)
	rsp, err := tpm2.NVRead{AuthHandle: tpm2.AuthHandle{Handle: nh.Handle, Name: nh.Name, Auth: tpm2.PasswordAuth(nil)},
		NVIndex: nh, Size: 8}.Execute(tpm)
	switch {
	case errors.Is(err, tpm2.TPMRCNVUninitialized):
		return f, nil
	case errors.Is(err, tpm2.TPMRCHandle):
		return f, fmt.Errorf("rollback floor %#x: TPM2_NV_Read: not provisioned: %w", index, err)
	case err != nil:
		return f, fmt.Errorf("rollback floor %#x: TPM2_NV_Read: %w", index, err)
	case len(rsp.Data.Buffer) != 8:
		return f, fmt.Errorf("rollback floor %#x: read %d bytes", index, len(rsp.Data.Buffer))
	}
	f.Version, f.Written = binary.BigEndian.Uint64(rsp.Data.Buffer), true
	return f, nil
}

// Settle ends /init's rollback work with the floor it read before
// deciding: a production boot (raise) writes version when it is above the
// floor (TPM2_NV_Write), then every boot write-locks the index until the
// next TPM reset (TPM2_NV_WriteLock). One or two commands.
func (f Floor) Settle(tpm transport.TPM, version uint64, raise bool) error {
	nh := namedHandle(f.Index, f.Written)
	auth := tpm2.AuthHandle{Handle: nh.Handle, Name: nh.Name, Auth: tpm2.PasswordAuth(nil)}
	if raise && (!f.Written || version > f.Version) {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], version)
		_, err := tpm2.NVWrite{AuthHandle: auth, NVIndex: nh, Data: tpm2.TPM2BMaxNVBuffer{Buffer: b[:]}}.Execute(tpm)
		if errors.Is(err, tpm2.TPMRCNVLocked) {
			return fmt.Errorf("rollback floor %#x: %w", f.Index, ErrLocked)
		}
		if err != nil {
			return fmt.Errorf("rollback floor %#x: TPM2_NV_Write: %w", f.Index, err)
		}
		nh = namedHandle(f.Index, true)
		auth.Name = nh.Name
	}
	if _, err := (tpm2.NVWriteLock{AuthHandle: auth, NVIndex: nh}).Execute(tpm); err != nil {
		return fmt.Errorf("rollback floor %#x: TPM2_NV_WriteLock: %w", f.Index, err)
	}
	return nil
}

// namedHandle names a floor index as provisioned (Attributes, 8 bytes,
// SHA-256, no policy), written or not. Only password sessions are used, so
// the TPM does not check the name; go-tpm requires one.
func namedHandle(index uint32, written bool) tpm2.NamedHandle {
	pub := tpm2.TPMSNVPublic{NVIndex: tpm2.TPMIRHNVIndex(index), NameAlg: tpm2.TPMAlgSHA256, Attributes: Attributes(), DataSize: 8}
	pub.Attributes.Written = written
	nh := tpm2.NamedHandle{Handle: tpm2.TPMHandle(index)}
	if n, err := tpm2.NVName(&pub); err == nil {
		nh.Name = *n
	}
	return nh
}

// Provision defines the floor index with owner authorisation (ownerAuth
// may be nil for an empty owner password) and, when initial > 0, writes it.
func Provision(tpm transport.TPM, index uint32, ownerAuth []byte, initial uint64) error {
	if err := checkIndex(index); err != nil {
		return err
	}
	_, err := tpm2.NVDefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(ownerAuth)},
		Auth:       tpm2.TPM2BAuth{},
		PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
			NVIndex:    tpm2.TPMIRHNVIndex(index),
			NameAlg:    tpm2.TPMAlgSHA256,
			Attributes: Attributes(),
			DataSize:   8,
		}),
	}.Execute(tpm)
	if err != nil {
		return fmt.Errorf("rollback floor %#x: TPM2_NV_DefineSpace: %w", index, err)
	}
	if initial > 0 {
		return RaiseFloor(tpm, index, initial)
	}
	return nil
}
