package main

import (
	"context"
	"fmt"
	"os"

	"github.com/mcinit/mcinit/e2e/fixture"
)

func main() {
	dir := os.Getenv("MCINIT_E2E_DIR")
	os.MkdirAll(dir, 0o755)
	e, err := fixture.New(context.Background(), dir, "amd64", func(f string, a ...any) { fmt.Printf("==> "+f+"\n", a...) })
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println(e.Initrd)
}
