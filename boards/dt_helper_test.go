package boards_test

import (
	"bytes"

	"github.com/u-root/u-root/pkg/dt"
)

func readFDT(b []byte) (*dt.FDT, error) { return dt.ReadFDT(bytes.NewReader(b)) }
