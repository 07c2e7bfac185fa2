// Package identity reads a board's identity from the device tree (ARM) or
// DMI/SMBIOS (x86). All values are untrusted firmware input.
package identity

// Source says where an identity came from.
type Source string

const (
	SourceDT  Source = "dt"
	SourceDMI Source = "dmi"
)

// Identity is what the hardware says it is. Values are bounded and free of
// control characters once constructed by this package.
type Identity struct {
	Source Source
	Arch   string // GOARCH-style: "amd64", "arm64"

	// Device tree.
	Compatible []string // root compatible, most specific first
	Model      string

	// DMI/SMBIOS.
	SysVendor, ProductName, ProductVersion, ProductFamily, ProductSKU string
	BoardVendor, BoardName, BoardVersion                              string
	SystemUUID                                                        string

	// Serial is the DT serial-number or the DMI system serial.
	Serial string
}
