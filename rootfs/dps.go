package rootfs

import (
	"encoding/hex"
	"fmt"
)

// Discoverable Partitions Specification type UUIDs for root and root-verity
// partitions, per architecture (GOARCH names).
var (
	rootTypes = map[string]string{
		"amd64": "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
		"arm64": "b921b045-1df0-41c3-af44-4c6f280d3fae",
	}
	verityTypes = map[string]string{
		"amd64": "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
		"arm64": "df3300ce-d69f-4c92-978c-9bfb0f38d820",
	}
)

// RootType and VerityType give the DPS partition types for arch.
func RootType(arch string) (GUID, error)   { return typeFor(rootTypes, arch) }
func VerityType(arch string) (GUID, error) { return typeFor(verityTypes, arch) }

func typeFor(m map[string]string, arch string) (GUID, error) {
	s, ok := m[arch]
	if !ok {
		return GUID{}, fmt.Errorf("rootfs: no partition type for arch %q", arch)
	}
	return ParseGUID(s)
}

// VerityUUIDs derives the DPS partition UUIDs from a root hash: the data
// partition takes the first 128 bits, the hash partition the last 128 bits,
// each read as a UUID in text order.
func VerityUUIDs(rootHashHex string) (data, hash GUID, err error) {
	h, err := hex.DecodeString(rootHashHex)
	if err != nil || len(h) < 32 {
		return data, hash, fmt.Errorf("rootfs: root hash %q: need at least 32 bytes of hex", rootHashHex)
	}
	if data, err = ParseGUID(uuidText(h[:16])); err != nil {
		return data, hash, err
	}
	hash, err = ParseGUID(uuidText(h[len(h)-16:]))
	return data, hash, err
}

func uuidText(b []byte) string {
	s := hex.EncodeToString(b)
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}
