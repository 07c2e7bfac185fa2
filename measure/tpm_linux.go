package measure

import (
	"fmt"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// TPM device nodes, resource manager first.
var tpmDevices = []string{"/dev/tpmrm0", "/dev/tpm0"}

// OpenTPM opens the kernel's TPM, preferring the resource manager.
// go-tpm's Linux transport polls before reading and keeps the fd blocking,
// which avoids the spurious EOFs of a plain os.File.
func OpenTPM() (transport.TPMCloser, error) {
	var errs []error
	for _, p := range tpmDevices {
		t, err := linuxtpm.Open(p)
		if err == nil {
			return t, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no TPM: %v", errs)
}
