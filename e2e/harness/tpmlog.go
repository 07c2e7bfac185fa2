package harness

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
)

// TPMCommand is one command swtpm received, from its log (Machine.TPMLog).
type TPMCommand struct {
	Code   uint32 // TPM_CC
	Size   int    // command size in bytes
	Handle uint32 // the first handle (bytes 10-13), when the command has one
}

// Name is the command's TPM2 name for the codes mcinit's boot path and the
// kernel use, else its code in hex. A PCR_Extend names its PCR
// ("PCR_Extend[13]"): the firmware extends PCRs 0-7 too.
func (c TPMCommand) Name() string {
	n, ok := tpmCCNames[c.Code]
	if !ok {
		return fmt.Sprintf("CC_%#x", c.Code)
	}
	if c.Code == ccPCRExtend {
		return fmt.Sprintf("%s[%d]", n, c.Handle)
	}
	return n
}

const ccPCRExtend = 0x182

var tpmCCNames = map[uint32]string{
	0x11f: "NV_UndefineSpace", 0x129: "HierarchyChangeAuth", 0x12a: "NV_DefineSpace", 0x131: "CreatePrimary",
	0x137: "NV_Write", 0x138: "NV_WriteLock", 0x143: "SelfTest", 0x144: "Startup",
	0x145: "Shutdown", 0x148: "Quote", 0x14e: "NV_Read", 0x153: "Create",
	0x146: "StirRandom", 0x157: "Load", 0x15e: "Unseal", 0x165: "FlushContext", 0x169: "NV_ReadPublic",
	0x176: "StartAuthSession", 0x17a: "GetCapability", 0x17b: "GetRandom",
	0x17e: "PCR_Read", 0x17f: "PolicyPCR", 0x181: "ReadClock", 0x182: "PCR_Extend", 0x189: "PolicyGetDigest",
}

// ParseTPMLog returns the commands in a swtpm log written at level 20: each
// "SWTPM_IO_Read: length N" line is followed by the command in hex, whose
// bytes 6-9 are the command code.
func ParseTPMLog(b []byte) []TPMCommand {
	var cmds []TPMCommand
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	want := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "SWTPM_IO_Read: length ") {
			want = true
			continue
		}
		if !want {
			continue
		}
		want = false
		raw, err := hex.DecodeString(strings.ReplaceAll(line, " ", ""))
		if err != nil || len(raw) < 10 {
			continue
		}
		c := TPMCommand{
			Code: be32(raw[6:]),
			Size: int(be32(raw[2:])),
		}
		if len(raw) >= 14 {
			c.Handle = be32(raw[10:])
		}
		cmds = append(cmds, c)
	}
	return cmds
}

// CountTPMCommands counts commands by name.
func CountTPMCommands(cmds []TPMCommand) map[string]int {
	n := map[string]int{}
	for _, c := range cmds {
		n[c.Name()]++
	}
	return n
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
