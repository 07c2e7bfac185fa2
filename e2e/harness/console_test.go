package harness

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

// TestTypeConsole: each step types only once its text has appeared after
// the previous step's, and stops when the context ends.
func TestTypeConsole(t *testing.T) {
	var mu sync.Mutex
	var out bytes.Buffer
	emit := func(s string) { mu.Lock(); out.WriteString(s); mu.Unlock() }
	output := func() []byte { mu.Lock(); defer mu.Unlock(); return bytes.Clone(out.Bytes()) }
	var typed bytes.Buffer
	var tmu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { tmu.Lock(); defer tmu.Unlock(); return typed.Write(p) })
	got := func() string { tmu.Lock(); defer tmu.Unlock(); return typed.String() }

	steps := []ConsoleStep{{Expect: "shell", Send: ""}, {Expect: "$ ", Send: "echo hi\n"}, {Expect: "$ ", Send: "exit\n"}}
	done := make(chan int, 1)
	// "$ " before "shell" must not count for the second step.
	emit("boot $ ")
	go func() { done <- typeConsole(context.Background(), output, w, steps) }()
	time.Sleep(3 * consolePoll)
	if g := got(); g != "" {
		t.Fatalf("typed %q before the shell appeared", g)
	}
	emit("rescue shell\r\n$ ")
	waitFor(t, func() bool { return got() == "echo hi\n" })
	time.Sleep(3 * consolePoll)
	if g := got(); g != "echo hi\n" {
		t.Fatalf("typed %q: the third step matched the same prompt", g)
	}
	emit("hi\r\n$ ")
	if n := <-done; n != 3 || got() != "echo hi\nexit\n" {
		t.Errorf("typed %d steps, %q", n, got())
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- typeConsole(ctx, output, w, []ConsoleStep{{Expect: "never", Send: "x"}}) }()
	cancel()
	if n := <-done; n != 0 {
		t.Errorf("cancelled: typed %d steps", n)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(consolePoll / 2)
	}
	t.Fatal("condition never held")
}
