package harness

import (
	"fmt"
	"os"
	"path/filepath"
)

// Firmware boots a Machine through UEFI firmware (pflash) instead of QEMU's
// direct kernel boot: the firmware starts \EFI\BOOT\BOOT<arch>.EFI from the
// EFI System Partition of Machine.Disk.
type Firmware struct {
	Code string // read-only code flash image
	// Vars is the variable store template; each boot gets its own copy
	// (the firmware writes to it).
	Vars string
	// SecureBoot records that Vars enrolls keys (PK, KEK, db): the firmware
	// then starts only images signed by a db key.
	SecureBoot bool
	// SMM (x86): the code keeps its variables in SMM, as OVMF's Secure Boot
	// builds do; the machine then needs SMM and a secure flash.
	SMM bool
}

// Lines UEFI firmware (EDK2's BdsDxe) prints on the console.
const (
	// FirmwareDenied ends the line of an image Secure Boot refused to load.
	FirmwareDenied = ": Access Denied"
	// FirmwareNoBoot is printed when no boot option could be started.
	FirmwareNoBoot = "BdsDxe: No bootable option or device was found."
)

// SecureBootFirmware returns Debian's EDK2 build for arch with Secure Boot
// enforcing and Debian's test ("snakeoil") keys enrolled: OVMF (package
// ovmf) for amd64, AAVMF (package qemu-efi-aarch64) for arm64.
func SecureBootFirmware(arch string) (Firmware, error) {
	ga, err := GoArch(arch)
	if err != nil {
		return Firmware{}, err
	}
	f := Firmware{SecureBoot: true}
	pkg := "ovmf"
	switch ga {
	case "amd64":
		f.Code, f.Vars = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
		f.SMM = true
	case "arm64":
		pkg = "qemu-efi-aarch64"
		f.Code, f.Vars = "/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.snakeoil.fd"
	}
	for _, p := range []string{f.Code, f.Vars} {
		if _, err := os.Stat(p); err != nil {
			return Firmware{}, fmt.Errorf("firmware %s missing (install Debian's %s): %w", p, pkg, err)
		}
	}
	return f, nil
}

// PlainFirmware returns Debian's EDK2 build for arch without Secure Boot
// (no keys enrolled): the control for tests of what Secure Boot changes,
// and the firmware of an attacker's boot. OVMF for amd64, AAVMF for arm64.
func PlainFirmware(arch string) (Firmware, error) {
	ga, err := GoArch(arch)
	if err != nil {
		return Firmware{}, err
	}
	f := Firmware{Code: "/usr/share/OVMF/OVMF_CODE_4M.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.fd"}
	pkg := "ovmf"
	if ga == "arm64" {
		f.Code, f.Vars, pkg = "/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd", "qemu-efi-aarch64"
	}
	for _, p := range []string{f.Code, f.Vars} {
		if _, err := os.Stat(p); err != nil {
			return Firmware{}, fmt.Errorf("firmware %s missing (install Debian's %s): %w", p, pkg, err)
		}
	}
	return f, nil
}

// SnakeoilKey returns Debian's Secure Boot test key and certificate for
// arch's firmware (enrolled in PK, KEK and db of SecureBootFirmware), and
// the key's passphrase. Test use only: the private key is public.
func SnakeoilKey(arch string) (key, cert, passphrase string, err error) {
	ga, err := GoArch(arch)
	if err != nil {
		return "", "", "", err
	}
	dir := map[string]string{"amd64": "/usr/share/ovmf", "arm64": "/usr/share/qemu-efi-aarch64"}[ga]
	key, cert = filepath.Join(dir, "PkKek-1-snakeoil.key"), filepath.Join(dir, "PkKek-1-snakeoil.pem")
	for _, p := range []string{key, cert} {
		if _, err := os.Stat(p); err != nil {
			return "", "", "", fmt.Errorf("snakeoil key %s missing: %w", p, err)
		}
	}
	// Debian's README.Debian of the ovmf package gives the passphrase.
	return key, cert, "snakeoil", nil
}

// firmwareArgs returns QEMU's flash arguments, with a private copy of the
// variable store in dir.
func firmwareArgs(ga string, f *Firmware, dir string) ([]string, error) {
	b, err := os.ReadFile(f.Vars)
	if err != nil {
		return nil, err
	}
	vars := filepath.Join(dir, "vars.fd")
	if err := os.WriteFile(vars, b, 0o600); err != nil {
		return nil, err
	}
	var a []string
	if ga == "amd64" && f.SMM {
		// OVMF's Secure Boot builds keep their variables in SMM: the flash
		// must only be writable from SMM.
		a = append(a, "-global", "driver=cfi.pflash01,property=secure,value=on")
	}
	return append(a,
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+f.Code,
		"-drive", "if=pflash,format=raw,unit=1,file="+vars), nil
}
