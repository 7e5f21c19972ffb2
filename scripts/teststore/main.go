// Command teststore runs the embedded store (FerretDB on SQLite) as a
// process of its own, for test binaries built with -tags payfn_extstore:
// scripts/test builds the fuzz targets that way, so no instrumented fuzz
// binary links FerretDB and SQLite (instrumenting them was the longest
// step of a cold run). It prints the server's URI on one line, then serves
// until its standard input closes, which happens when the test process
// that started it exits, however it exits.
//
//	go run ./scripts/teststore -dir /tmp/data
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/payfn/payfn/shared/store/embedded"
)

func main() {
	dir := flag.String("dir", "", "the data folder")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "teststore: -dir is required")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	srv, err := embedded.Start(ctx, embedded.Options{Dir: *dir})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "teststore:", err)
		os.Exit(1)
	}
	fmt.Println(srv.URI())
	io.Copy(io.Discard, os.Stdin) // returns when the parent's end closes
	srv.Close()
}
