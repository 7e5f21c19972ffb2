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
//  4. every fuzz target briefly (-fuzztime each), found by reading the test
//     files, so a new target is fuzzed without editing this file.
//
//     go run ./scripts/test [-fuzztime 4s] [-fuzzjobs N] [-skip-fuzz] [-skip-bench] [-steps vet,tests,bench,fuzz]
//
// Where the time goes on a cold machine is compiling: the fuzz targets need
// their packages and every dependency compiled again with coverage
// instrumentation, and the deploy checks install the Serverless Framework
// with npm. So, without changing what is checked:
//
//   - the npm install starts in the background at once (it waits on the
//     network while vet compiles), and the deploy test finds it done;
//   - each fuzzed package's instrumented test binary is built once (go test
//     -c -fuzz) in the background, at low priority, while the other steps
//     run, instead of once per target, and its targets run from it;
//   - the fuzz targets are found by parsing the test files, not with go
//     test -list (which links every test binary again);
//   - -fuzzjobs N runs N targets at once, each with its share of the CPUs,
//     for when time matters more than executions per target;
//   - every go command it starts (and those the tests start) builds with
//     -trimpath, as the function binaries are built: the deploy checks
//     build every function exactly as deployed, and with the same flag
//     they reuse the packages the tests compiled instead of compiling the
//     whole dependency graph a second time (30 s of one build's 45 s of CPU,
//     cold).
//
// Every step's time is printed at the end.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/payfn/payfn/internal/deploy/nodedeps"
)

func main() {
	fuzztime := flag.Duration("fuzztime", 4*time.Second, "how long each fuzz target runs")
	// One target at a time by default: each then gets every CPU as a fuzzing
	// worker for -fuzztime, as with go test -fuzz. Running targets side by
	// side finishes sooner but gives each a share of the CPUs, so fewer
	// executions (on 2 cores, half).
	fuzzjobs := flag.Int("fuzzjobs", 1, "fuzz targets run at once, each with GOMAXPROCS/fuzzjobs workers (more is faster, with fewer executions per target)")
	skipFuzz := flag.Bool("skip-fuzz", false, "do not run the fuzz targets")
	skipBench := flag.Bool("skip-bench", false, "do not run the benchmarks once")
	only := flag.String("steps", "vet,tests,bench,fuzz", "the steps to run, comma-separated (CI runs them all)")
	flag.Parse()
	if *fuzzjobs < 1 {
		*fuzzjobs = 1
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		want[strings.TrimSpace(s)] = true
	}
	*skipFuzz = *skipFuzz || !want["fuzz"]
	*skipBench = *skipBench || !want["bench"]

	if !slices.Contains(strings.Fields(os.Getenv("GOFLAGS")), "-trimpath") {
		os.Setenv("GOFLAGS", strings.TrimSpace(os.Getenv("GOFLAGS")+" -trimpath"))
	}
	start := time.Now()
	var times timings
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var npmDone <-chan struct{} = closed()
	if want["tests"] {
		npmDone = installNodeDeps(ctx, &times)
	}

	// The instrumented fuzz builds start at once, at low priority: they
	// share nothing with vet's and the tests' builds (other compiler flags),
	// so they only take CPU the steps leave idle while they wait on module
	// downloads, subprocesses and the network.
	var fuzz *fuzzBuild
	if !*skipFuzz {
		fuzz = startFuzzBuild(ctx, &times)
	}
	steps := []struct {
		name string
		skip bool
		run  func() error
	}{
		{"vet", !want["vet"], func() error { return gocmd("vet", "./...") }},
		{"tests", !want["tests"], func() error { return gocmd("test", "./...") }},
		{"benchmarks once", *skipBench, func() error {
			return gocmd("test", "-run", "^$", "-bench", ".", "-benchtime", "1x", "./...")
		}},
		{"fuzzing", *skipFuzz, func() error { return fuzz.run(*fuzztime, *fuzzjobs, &times) }},
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
			cancel()
			times.print(os.Stderr, time.Since(start))
			os.Exit(1)
		}
		d := time.Since(t)
		times.add(s.name, d)
		fmt.Printf("== %s: ok in %s\n", s.name, d.Round(time.Second))
	}
	<-npmDone
	times.print(os.Stdout, time.Since(start))
	fmt.Printf("all checks passed in %s\n", time.Since(start).Round(time.Second))
}

// timings collects how long each step and background job took, for the
// table at the end.
type timings struct {
	mu   sync.Mutex
	rows []string
}

func (t *timings) add(name string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rows = append(t.rows, fmt.Sprintf("  %-44s %8s", name, d.Round(100*time.Millisecond)))
}

func (t *timings) print(w io.Writer, total time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintln(w, "== times (background jobs overlap the steps)")
	for _, r := range t.rows {
		fmt.Fprintln(w, r)
	}
	fmt.Fprintf(w, "  %-44s %8s\n", "total", total.Round(100*time.Millisecond))
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

// installNodeDeps starts installing the deploy checks' Node packages in the
// background, where the test can share the install (it waits for the lock).
// Its outcome is only reported: the test decides pass, fail or skip.
func installNodeDeps(ctx context.Context, times *timings) <-chan struct{} {
	npm, err := exec.LookPath("npm")
	if err != nil || !nodedeps.ConcurrentInstalls {
		return closed()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err := nodedeps.Install(ctx, npm, filepath.Join("deploy", "serverless-aws"))
		switch {
		case err != nil:
			fmt.Printf("-- background npm install: %v (the deploy test will report it)\n", firstLine(err))
		case res.Ran:
			fmt.Printf("-- background npm install done in %s\n", res.Took.Round(time.Second))
		}
		times.add("background: npm ci (deploy/serverless-aws)", res.Took)
	}()
	return done
}

func closed() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

type fuzzTarget struct{ pkg, dir, name string }

type fuzzPackage struct {
	path, dir string
	targets   []string
	bin       string
	err       error
	log       []byte
}

// fuzzBuild is the background build of each fuzzed package's instrumented
// test binary.
type fuzzBuild struct {
	tmp  string
	pkgs []*fuzzPackage
	err  error // listing failed
	done chan struct{}
}

func startFuzzBuild(ctx context.Context, times *timings) *fuzzBuild {
	fb := &fuzzBuild{done: make(chan struct{})}
	go func() {
		defer close(fb.done)
		start := time.Now()
		fb.pkgs, fb.err = listFuzzTargets(".")
		if fb.err != nil {
			return
		}
		if len(fb.pkgs) == 0 {
			fb.err = errors.New("no fuzz targets found: the listing is broken or they were removed")
			return
		}
		if fb.tmp, fb.err = os.MkdirTemp("", "payfn-fuzz-"); fb.err != nil {
			return
		}
		// One package at a time: the instrumented standard library and
		// shared dependencies compile once, and later packages find them
		// in the build cache.
		for i, p := range fb.pkgs {
			p.bin = filepath.Join(fb.tmp, fmt.Sprintf("%d.test", i))
			t := time.Now()
			// payfn_extstore: the tests' embedded store runs as a process of
			// its own (scripts/teststore), so no fuzz binary links FerretDB
			// and SQLite: fuzzing instruments every package a binary links,
			// and instrumenting those was the longest step of a cold run.
			cmd := lowPriority(ctx, "go", "test", "-c", "-fuzz", ".", "-tags", "payfn_extstore", "-o", p.bin, p.path)
			p.log, p.err = cmd.CombinedOutput()
			times.add("background: fuzz build "+strings.TrimPrefix(p.path, "github.com/payfn/payfn/"), time.Since(t))
			if p.err != nil {
				return
			}
		}
		times.add("background: fuzz builds, all", time.Since(start))
	}()
	return fb
}

// lowPriority runs a command under nice where there is one, so background
// compiling takes the CPU the tests leave idle rather than slowing them.
func lowPriority(ctx context.Context, name string, args ...string) *exec.Cmd {
	if nice, err := exec.LookPath("nice"); err == nil {
		return exec.CommandContext(ctx, nice, append([]string{"-n", "15", name}, args...)...)
	}
	return exec.CommandContext(ctx, name, args...)
}

// run waits for the builds, then runs every target for fuzztime, jobs at a
// time, with the package folder as working directory (the seed corpus in
// testdata/fuzz is read, and a failing input written, there).
func (fb *fuzzBuild) run(fuzztime time.Duration, jobs int, times *timings) error {
	if fb == nil {
		return errors.New("fuzz build never started")
	}
	t := time.Now()
	<-fb.done
	if w := time.Since(t); w > time.Second {
		times.add("fuzzing: waiting for the builds", w)
	}
	t = time.Now()
	defer os.RemoveAll(fb.tmp)
	if fb.err != nil {
		return fb.err
	}
	for _, p := range fb.pkgs {
		if p.err != nil {
			os.Stderr.Write(p.log)
			return fmt.Errorf("go test -c -fuzz %s: %w", p.path, p.err)
		}
	}
	cache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		return fmt.Errorf("go env GOCACHE: %w", err)
	}
	fuzzCache := filepath.Join(strings.TrimSpace(string(cache)), "fuzz")
	workers := max(1, runtime.GOMAXPROCS(0)/jobs)

	type job struct {
		p    *fuzzPackage
		name string
	}
	var queue []job
	for _, p := range fb.pkgs {
		for _, n := range p.targets {
			queue = append(queue, job{p, n})
		}
	}
	sem := make(chan struct{}, jobs)
	var mu sync.Mutex
	var failures []error
	var wg sync.WaitGroup
	for _, j := range queue {
		sem <- struct{}{}
		mu.Lock()
		stop := len(failures) > 0
		mu.Unlock()
		if stop {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// The flags go test passes when it runs a fuzz target itself.
			runTarget := func() ([]byte, error) {
				cmd := exec.Command(j.p.bin, "-test.run=^$", "-test.fuzz=^"+j.name+"$",
					"-test.fuzztime="+fuzztime.String(), "-test.parallel="+fmt.Sprint(workers),
					"-test.fuzzcachedir="+filepath.Join(fuzzCache, j.p.path),
					"-test.timeout=10m", "-test.paniconexit0")
				cmd.Dir = j.p.dir
				return cmd.CombinedOutput()
			}
			out, err := runTarget()
			if err != nil && deadlineRace(out) {
				// Go 1.26's fuzz coordinator can report its own -fuzztime
				// deadline as a failure (go.dev/issue/75804, fixed in Go
				// 1.27): no input failed and none was written. Run the
				// target once more; a second failure of any kind stands.
				fmt.Printf("-- %s %s: the fuzzing engine's deadline race (go.dev/issue/75804), no failing input; running it again\n", j.p.path, j.name)
				out, err = runTarget()
			}
			mu.Lock()
			defer mu.Unlock()
			fmt.Printf("-- %s %s for %s with %d workers\n%s", j.p.path, j.name, fuzztime, workers, summary(out, err))
			if err != nil {
				failures = append(failures, fmt.Errorf("%s %s: %w", j.p.path, j.name, err))
			}
		}()
	}
	wg.Wait()
	times.add("fuzzing: running the targets", time.Since(t))
	return errors.Join(failures...)
}

// deadlineRace reports whether a fuzz run's failure is only the engine's
// deadline race: "context deadline exceeded" and nothing else failing (no
// failing input written, no panic, no test error line).
func deadlineRace(out []byte) bool {
	s := string(out)
	if !strings.Contains(s, "context deadline exceeded") {
		return false
	}
	for _, bad := range []string{"Failing input written", "panic:", "_test.go:", "fuzz: minimizing"} {
		if strings.Contains(s, bad) {
			return false
		}
	}
	return true
}

// summary keeps a passing target's last progress line; a failure shows all.
func summary(out []byte, err error) string {
	if err != nil {
		return string(out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var keep []string
	for _, l := range lines {
		if strings.HasPrefix(l, "fuzz: elapsed") {
			keep = []string{l}
		}
	}
	return strings.Join(keep, "\n") + "\n"
}

// listFuzzTargets finds every FuzzXxx(*testing.F) in root's module's test
// files by parsing them, which compiles nothing (go test -list would link
// every test binary again).
func listFuzzTargets(root string) ([]*fuzzPackage, error) {
	cmd := exec.Command("go", "list", "-json=ImportPath,Dir,TestGoFiles,XTestGoFiles", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w\n%s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("go list: %w", err)
	}
	var pkgs []*fuzzPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	fset := token.NewFileSet()
	for dec.More() {
		var p struct {
			ImportPath, Dir           string
			TestGoFiles, XTestGoFiles []string
		}
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		fp := &fuzzPackage{path: p.ImportPath, dir: p.Dir}
		for _, name := range append(p.TestGoFiles, p.XTestGoFiles...) {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				return nil, fmt.Errorf("parse %s: %w", name, err)
			}
			for _, d := range f.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok && isFuzzTarget(fd) {
					fp.targets = append(fp.targets, fd.Name.Name)
				}
			}
		}
		if len(fp.targets) > 0 {
			pkgs = append(pkgs, fp)
		}
	}
	return pkgs, nil
}

// isFuzzTarget applies go test's rule: a top-level func named Fuzz, or
// Fuzz followed by a non-lowercase letter, with one *testing.F parameter.
func isFuzzTarget(fd *ast.FuncDecl) bool {
	if fd.Recv != nil || !strings.HasPrefix(fd.Name.Name, "Fuzz") {
		return false
	}
	if rest := fd.Name.Name[len("Fuzz"):]; rest != "" {
		if r, _ := utf8.DecodeRuneInString(rest); unicode.IsLower(r) {
			return false
		}
	}
	ps := fd.Type.Params.List
	if len(ps) != 1 || len(ps[0].Names) > 1 {
		return false
	}
	star, ok := ps[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "F"
}
