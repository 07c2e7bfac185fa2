package identity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/u-root/u-root/pkg/dt"
)

// MaxDTBSize bounds a flattened device tree. Real trees are tens to a few
// hundred KiB; the bound keeps a hostile header from making pkg/dt allocate
// gigabytes.
const MaxDTBSize = 16 << 20

// FromDTB identifies a board from a flattened device tree blob: the root
// node's compatible list, model and serial-number. Arch is "arm64" (the
// only device-tree architecture mcinit boots); Read overrides it with the
// running architecture.
func FromDTB(b []byte) (id Identity, err error) {
	if err := checkFDT(b); err != nil {
		return Identity{}, fmt.Errorf("device tree: %w", err)
	}
	// pkg/dt is not hardened against hostile input; a panic in it is a
	// malformed tree, not a crash of /init.
	defer func() {
		if r := recover(); r != nil {
			id, err = Identity{}, fmt.Errorf("device tree: malformed (parser panic: %v)", r)
		}
	}()
	fdt, err := dt.ReadFDT(bytes.NewReader(b))
	if err != nil {
		return Identity{}, fmt.Errorf("device tree: %w", err)
	}
	return fromRoot(fdt.RootNode)
}

func fromRoot(root *dt.Node) (Identity, error) {
	if root == nil {
		return Identity{}, errors.New("device tree: no root node")
	}
	id := Identity{Source: SourceDT, Arch: "arm64"}
	if p, ok := root.LookProperty("compatible"); ok {
		// Split by hand: AsStringList panics in u-root v0.16.
		for _, c := range strings.Split(strings.TrimRight(string(p.Value), "\x00"), "\x00") {
			if len(id.Compatible) == MaxCompatible {
				break
			}
			if c = clean(c); c != "" {
				id.Compatible = append(id.Compatible, c)
			}
		}
	}
	if len(id.Compatible) == 0 {
		return Identity{}, errors.New("device tree: root node has no compatible property")
	}
	if p, ok := root.LookProperty("model"); ok {
		id.Model = clean(string(p.Value))
	}
	if p, ok := root.LookProperty("serial-number"); ok {
		id.Serial = clean(string(p.Value))
	}
	return id, nil
}

// checkFDT validates the header and the structure block's framing so that
// every length pkg/dt later allocates from is bounded by the blob itself.
func checkFDT(b []byte) error {
	const hdrLen = 40
	if len(b) < hdrLen {
		return fmt.Errorf("%d bytes is too short for a header", len(b))
	}
	if len(b) > MaxDTBSize {
		return fmt.Errorf("%d bytes is larger than the %d-byte limit", len(b), MaxDTBSize)
	}
	be := binary.BigEndian
	if m := be.Uint32(b[0:]); m != dt.Magic {
		return fmt.Errorf("bad magic %#08x", m)
	}
	total := uint64(be.Uint32(b[4:]))
	offStruct, offStrings := uint64(be.Uint32(b[8:])), uint64(be.Uint32(b[12:]))
	offRsv := uint64(be.Uint32(b[16:]))
	sizeStrings, sizeStruct := uint64(be.Uint32(b[32:])), uint64(be.Uint32(b[36:]))
	switch {
	case total > uint64(len(b)) || total < hdrLen:
		return fmt.Errorf("header totalsize %d does not fit the %d-byte blob", total, len(b))
	case offRsv >= total:
		return fmt.Errorf("memory reservation offset %d is beyond totalsize %d", offRsv, total)
	case offStruct+sizeStruct > total:
		return fmt.Errorf("structure block [%d,+%d) is beyond totalsize %d", offStruct, sizeStruct, total)
	case offStrings+sizeStrings > total:
		return fmt.Errorf("strings block [%d,+%d) is beyond totalsize %d", offStrings, sizeStrings, total)
	case offStruct%4 != 0:
		return fmt.Errorf("structure block offset %d is not 4-byte aligned", offStruct)
	}
	return scanStruct(b[offStruct : offStruct+sizeStruct])
}

// scanStruct walks the structure block's tokens and checks each property
// length against the bytes that remain.
func scanStruct(s []byte) error {
	const maxDepth = 64
	depth := 0
	for off := 0; ; {
		if off+4 > len(s) {
			return errors.New("structure block ends without FDT_END")
		}
		tok := binary.BigEndian.Uint32(s[off:])
		off += 4
		switch tok {
		case 1: // FDT_BEGIN_NODE: NUL-terminated name, padded
			n := bytes.IndexByte(s[off:], 0)
			if n < 0 {
				return errors.New("unterminated node name")
			}
			off = align4(off + n + 1)
			if depth++; depth > maxDepth {
				return fmt.Errorf("nodes nested deeper than %d", maxDepth)
			}
		case 2: // FDT_END_NODE
			depth--
		case 3: // FDT_PROP: len, nameoff, value
			if off+8 > len(s) {
				return errors.New("truncated property header")
			}
			n := uint64(binary.BigEndian.Uint32(s[off:]))
			off += 8
			if n > uint64(len(s)-off) {
				return fmt.Errorf("property length %d runs past the structure block", n)
			}
			off = align4(off + int(n))
		case 4: // FDT_NOP
		case 9: // FDT_END
			return nil
		default:
			return fmt.Errorf("unknown structure token %#x", tok)
		}
	}
}

func align4(n int) int { return (n + 3) &^ 3 }
