package harness

import (
	"bytes"
	"context"
	"io"
	"time"
)

// ConsoleStep is one exchange on the guest's serial console: wait until
// Expect appears in the console output (after where the previous step's
// Expect ended), then type Send.
type ConsoleStep struct {
	Expect string // "" types Send at once
	Send   string // written to the serial line as is ("\n" ends a line)
}

// consolePoll is how often the console output is searched for a step's
// Expect; typing is not timing-sensitive, so polling is enough.
const consolePoll = 50 * time.Millisecond

// typeConsole plays steps against the console output that output returns
// (growing as the guest writes), writing each Send to w. It returns the
// number of steps whose Send was written: all of them, or fewer when ctx
// ended first or a write failed.
func typeConsole(ctx context.Context, output func() []byte, w io.Writer, steps []ConsoleStep) int {
	pos := 0
	for i, st := range steps {
		for st.Expect != "" {
			out := output()
			if j := bytes.Index(out[min(pos, len(out)):], []byte(st.Expect)); j >= 0 {
				pos += j + len(st.Expect)
				break
			}
			select {
			case <-ctx.Done():
				return i
			case <-time.After(consolePoll):
			}
		}
		if st.Send != "" {
			if _, err := io.WriteString(w, st.Send); err != nil {
				return i
			}
		}
	}
	return len(steps)
}
