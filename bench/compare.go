package bench

import (
	"runtime"
	"slices"
	"time"
)

// Paired is the outcome of Compare: per-operation CPU of a subject and of
// its floor, and the median of their per-round ratios.
type Paired struct {
	SubjectCPU time.Duration // median over rounds, per operation
	FloorCPU   time.Duration
	Ratio      float64 // median of the rounds' subject/floor
	Rounds     int
	PerRound   int
}

// Compare runs subject and floor in alternating blocks of perRound
// operations, rounds times, measuring this process's CPU for each block.
// Adjacent blocks see the same machine, so on a shared, noisy host the
// per-round ratio is far steadier than two separate benchmark runs.
func Compare(subject, floor func(i int) error, rounds, perRound int) (Paired, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var subj, flo, ratio []float64
	n := 0
	for r := 0; r < rounds; r++ {
		runtime.GC()
		var ds, df float64
		// Alternate which goes first so neither always follows a GC.
		for _, first := range []bool{r%2 == 0, r%2 != 0} {
			start := cpuTime()
			for i := 0; i < perRound; i++ {
				var err error
				if first {
					err = subject(n)
				} else {
					err = floor(n)
				}
				n++
				if err != nil {
					return Paired{}, err
				}
			}
			d := float64(cpuTime()-start) / float64(perRound)
			if first {
				ds = d
			} else {
				df = d
			}
		}
		subj, flo, ratio = append(subj, ds), append(flo, df), append(ratio, ds/df)
	}
	return Paired{
		SubjectCPU: time.Duration(median(subj)),
		FloorCPU:   time.Duration(median(flo)),
		Ratio:      median(ratio),
		Rounds:     rounds,
		PerRound:   perRound,
	}, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// CPUTime is the CPU (user+system) this process has used so far.
func CPUTime() time.Duration { return cpuTime() }

// Median is the median of xs.
func Median(xs []float64) float64 { return median(xs) }
