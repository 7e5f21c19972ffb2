// Command test runs every check CI runs, in order, and stops at the first
// that fails:
//
//  1. go vet ./...
//
//  2. go test ./...            (unit, end-to-end, deploy and build tests)
//
//  3. every benchmark once     (go test -run '^$' -bench . -benchtime 1x ./...)
//     so a benchmark that no longer runs is caught; figures come from
//     `go run ./scripts/bench`, not from here.
//
//  4. every fuzz target briefly (go test -fuzz, -fuzztime each), found with
//     go test -list '^Fuzz' ./... so a new target is fuzzed without editing
//     this file.
//
//     go run ./scripts/test [-fuzztime 4s] [-skip-fuzz] [-skip-bench]
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

func main() {
	fuzztime := flag.Duration("fuzztime", 4*time.Second, "how long each fuzz target runs")
	skipFuzz := flag.Bool("skip-fuzz", false, "do not run the fuzz targets")
	skipBench := flag.Bool("skip-bench", false, "do not run the benchmarks once")
	flag.Parse()

	start := time.Now()
	steps := []struct {
		name string
		skip bool
		run  func() error
	}{
		{"vet", false, func() error { return gocmd("vet", "./...") }},
		{"tests", false, func() error { return gocmd("test", "./...") }},
		{"benchmarks once", *skipBench, func() error {
			return gocmd("test", "-run", "^$", "-bench", ".", "-benchtime", "1x", "./...")
		}},
		{"fuzzing", *skipFuzz, func() error { return fuzzAll(*fuzztime) }},
	}
	for _, s := range steps {
		if s.skip {
			fmt.Printf("== %s: skipped\n", s.name)
			continue
		}
		fmt.Printf("== %s\n", s.name)
		t := time.Now()
		if err := s.run(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL %s: %v\n", s.name, err)
			os.Exit(1)
		}
		fmt.Printf("== %s: ok in %s\n", s.name, time.Since(t).Round(time.Second))
	}
	fmt.Printf("all checks passed in %s\n", time.Since(start).Round(time.Second))
}

// gocmd runs the go tool with the output streamed, as a developer would see it.
func gocmd(args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

type fuzzTarget struct{ pkg, name string }

func fuzzAll(fuzztime time.Duration) error {
	targets, err := listFuzzTargets()
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("no fuzz targets found: the listing is broken or they were removed")
	}
	for _, t := range targets {
		fmt.Printf("-- %s %s for %s\n", t.pkg, t.name, fuzztime)
		if err := gocmd("test", "-run", "^$", "-fuzz", "^"+t.name+"$", "-fuzztime", fuzztime.String(), t.pkg); err != nil {
			return err
		}
	}
	return nil
}

// listFuzzTargets reads `go test -list` output, where each package's names
// come before the "ok <pkg>" line that closes them.
func listFuzzTargets() ([]fuzzTarget, error) {
	out, err := exec.Command("go", "test", "-list", "^Fuzz", "./...").Output()
	if err != nil {
		return nil, fmt.Errorf("list fuzz targets: %w", err)
	}
	var targets []fuzzTarget
	var pending []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Fuzz"):
			pending = append(pending, strings.TrimSpace(line))
		case strings.HasPrefix(line, "ok"):
			fields := strings.Fields(line)
			if len(fields) < 2 {
				return nil, fmt.Errorf("unexpected line in go test -list output: %q", line)
			}
			for _, name := range pending {
				targets = append(targets, fuzzTarget{pkg: fields[1], name: name})
			}
			pending = nil
		}
	}
	return targets, sc.Err()
}
