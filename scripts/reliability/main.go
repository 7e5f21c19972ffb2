// Command reliability runs the long versions of payfn's invariant tests
// (issue 3) and prints the figures RELIABILITY.md quotes:
//
//	go run ./scripts/reliability [-n 1000] [-close-n 200] [-count 1] [-fuzztime 60s]
//
// It runs shared/setup's tests with PAYFN_RELIABILITY_N (concurrent
// deliveries, notification/queryOrder races, createOrder races) and
// PAYFN_RELIABILITY_CLOSE_N (orders in the close-vs-pay race), collecting the
// figures each test reports through PAYFN_RELIABILITY_REPORT (one JSON object
// a line). Then it fuzzes every Fuzz target of the module, found with
// `go test -list '^Fuzz'`, for -fuzztime each, and counts the inputs tried.
// A fuzz target fails on any input that breaks its invariant, so a passing
// target means that many inputs with no unexpected state change.
//
// The exit status is non-zero if any test or fuzz target failed.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/payfn/payfn/internal/repo"
)

// figures is one case as the tests report it (shared/setup's report helper).
type figures struct {
	Case                string         `json:"case"`
	Tried               int            `json:"tried"`
	Answers             map[string]int `json:"answers"`
	LedgerRows          int            `json:"ledger_rows"`
	Transitions         int            `json:"transitions"`
	StateChanges        int            `json:"state_changes"`
	DuplicatesFulfilled int            `json:"duplicates_fulfilled"`
	Runs                int            `json:"-"`
	Result              string         `json:"-"`
}

func main() {
	n := flag.Int("n", 1000, "concurrent callers in each race (PAYFN_RELIABILITY_N)")
	closeN := flag.Int("close-n", 200, "orders in the close-vs-pay race (PAYFN_RELIABILITY_CLOSE_N)")
	count := flag.Int("count", 1, "how many times to run the invariant tests; figures are summed")
	fuzztime := flag.Duration("fuzztime", 60*time.Second, "how long to fuzz each target (0 skips fuzzing)")
	timeout := flag.Duration("timeout", 60*time.Minute, "go test -timeout for the invariant tests")
	flag.Parse()

	root, err := repo.Root()
	if err != nil {
		fail(err)
	}
	start := time.Now()
	rows, testsOK, err := runInvariantTests(root, *n, *closeN, *count, *timeout)
	if err != nil {
		fail(err)
	}
	fuzzOK := true
	if *fuzztime > 0 {
		fuzzRows, ok, err := runFuzzTargets(root, *fuzztime)
		if err != nil {
			fail(err)
		}
		rows, fuzzOK = append(rows, fuzzRows...), ok
	}

	fmt.Printf("\npayfn reliability run, %s, %s/%s, %d CPUs, go test -count=%d, N=%d, close N=%d, fuzztime=%s, took %s\n\n",
		time.Now().Format("2006-01-02 15:04"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), *count, *n, *closeN, *fuzztime, time.Since(start).Round(time.Second))
	printTable(os.Stdout, rows)
	if !testsOK || !fuzzOK {
		fmt.Println("\nFAILED: see the output above")
		os.Exit(1)
	}
}

// runInvariantTests runs shared/setup's tests verbosely, streaming their
// output, and returns the figures they reported, summed per case.
func runInvariantTests(root string, n, closeN, count int, timeout time.Duration) ([]figures, bool, error) {
	report, err := os.CreateTemp("", "payfn-reliability-*.jsonl")
	if err != nil {
		return nil, false, fmt.Errorf("report file: %w", err)
	}
	report.Close()
	defer os.Remove(report.Name())

	cmd := exec.Command("go", "test", "-count="+strconv.Itoa(count), "-v", "-timeout="+timeout.String(), "./shared/setup")
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"PAYFN_RELIABILITY_N="+strconv.Itoa(n),
		"PAYFN_RELIABILITY_CLOSE_N="+strconv.Itoa(closeN),
		"PAYFN_RELIABILITY_REPORT="+report.Name())
	out, runErr := stream(cmd, func(line string) bool {
		return strings.HasPrefix(line, "--- ") || strings.HasPrefix(line, "ok") || strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "panic")
	})
	failed := failedTests(out)

	raw, err := os.ReadFile(report.Name())
	if err != nil {
		return nil, false, fmt.Errorf("read figures: %w", err)
	}
	byCase := map[string]*figures{}
	var order []string
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var f figures
		if err := json.Unmarshal(line, &f); err != nil {
			return nil, false, fmt.Errorf("figures line %q: %w", line, err)
		}
		sum, ok := byCase[f.Case]
		if !ok {
			sum = &figures{Case: f.Case, Answers: map[string]int{}, Result: "pass"}
			byCase[f.Case] = sum
			order = append(order, f.Case)
		}
		sum.Runs++
		sum.Tried += f.Tried
		sum.LedgerRows += f.LedgerRows
		sum.Transitions += f.Transitions
		sum.StateChanges += f.StateChanges
		sum.DuplicatesFulfilled += f.DuplicatesFulfilled
		for k, v := range f.Answers {
			sum.Answers[k] += v
		}
	}
	rows := make([]figures, 0, len(order))
	for _, c := range order {
		rows = append(rows, *byCase[c])
	}
	if runErr != nil {
		// Which case failed is in the output above; mark every row of a failed run.
		for i := range rows {
			rows[i].Result = "run failed"
		}
		if len(failed) > 0 {
			fmt.Fprintf(os.Stderr, "failed tests: %s\n", strings.Join(failed, ", "))
		}
	}
	if len(rows) == 0 {
		return nil, false, fmt.Errorf("go test ./shared/setup reported no figures (%v)", runErr)
	}
	return rows, runErr == nil, nil
}

var failLine = regexp.MustCompile(`^\s*--- FAIL: (\S+)`)

func failedTests(out string) []string {
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if m := failLine.FindStringSubmatch(line); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}

// runFuzzTargets fuzzes every Fuzz target of the module for d each.
func runFuzzTargets(root string, d time.Duration) ([]figures, bool, error) {
	targets, err := listFuzzTargets(root)
	if err != nil {
		return nil, false, err
	}
	allOK := true
	var rows []figures
	execs := regexp.MustCompile(`execs: (\d+)`)
	for _, t := range targets {
		fmt.Printf("fuzzing %s %s for %s\n", t.pkg, t.name, d)
		cmd := exec.Command("go", "test", "-run=^$", "-fuzz=^"+t.name+"$", "-fuzztime="+d.String(), t.pkg)
		cmd.Dir = root
		out, runErr := stream(cmd, func(line string) bool {
			return !strings.HasPrefix(line, "fuzz: elapsed")
		})
		f := figures{Case: fmt.Sprintf("fuzz %s (%s)", t.name, strings.TrimPrefix(t.pkg, "github.com/payfn/payfn/")), Runs: 1, Result: "pass"}
		if ms := execs.FindAllStringSubmatch(out, -1); len(ms) > 0 {
			f.Tried, _ = strconv.Atoi(ms[len(ms)-1][1])
		}
		if runErr != nil {
			allOK = false
			f.Result = "FAILED"
			f.StateChanges = -1 // unknown: the failing input is in testdata/fuzz
		}
		rows = append(rows, f)
	}
	return rows, allOK, nil
}

type fuzzTarget struct{ pkg, name string }

// listFuzzTargets asks go test which Fuzz functions each package has.
func listFuzzTargets(root string) ([]fuzzTarget, error) {
	cmd := exec.Command("go", "test", "-list=^Fuzz", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go test -list: %w", err)
	}
	// The listing prints a package's Fuzz names, then "ok  <pkg> <time>".
	var targets []fuzzTarget
	var pending []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Fuzz"):
			pending = append(pending, strings.TrimSpace(line))
		case len(fields) >= 2 && (fields[0] == "ok" || fields[0] == "?"):
			for _, name := range pending {
				targets = append(targets, fuzzTarget{pkg: fields[1], name: name})
			}
			pending = nil
		}
	}
	sort.Slice(targets, func(i, j int) bool {
		if targets[i].pkg != targets[j].pkg {
			return targets[i].pkg < targets[j].pkg
		}
		return targets[i].name < targets[j].name
	})
	return targets, nil
}

// stream runs cmd, echoing the lines show selects, and returns all output.
func stream(cmd *exec.Cmd, show func(string) bool) (string, error) {
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", strings.Join(cmd.Args, " "), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	var all strings.Builder
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		all.WriteString(line + "\n")
		if show(line) {
			fmt.Println(line)
		}
	}
	return all.String(), <-done
}

func printTable(w io.Writer, rows []figures) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\truns\ttried\tanswers\tledger rows\ttransitions\tstate changes\tduplicates fulfilled\tresult")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%s\n", r.Case, r.Runs, r.Tried, answers(r.Answers),
			r.LedgerRows, r.Transitions, r.StateChanges, r.DuplicatesFulfilled, r.Result)
	}
	tw.Flush()
}

func answers(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "reliability:", err)
	os.Exit(1)
}
