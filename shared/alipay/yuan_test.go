package alipay

import (
	"errors"
	"regexp"
	"strconv"
	"testing"
)

func TestParseYuan(t *testing.T) {
	good := map[string]int64{
		"0": 0, "0.00": 0, "0.01": 1, "0.1": 10, "0.10": 10, "1": 100, "12.3": 1230, "12.30": 1230,
		"12.34": 1234, "20": 2000, "99999999.99": 9999999999, "100000000": MaxYuanFen, "100000000.00": MaxYuanFen,
	}
	for s, want := range good {
		if got, err := ParseYuan(s); err != nil || got != want {
			t.Errorf("ParseYuan(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{
		"", "1e-1", "1E2", "+1", "-1", " 1", "1 ", "1.", ".5", "1.234", "0x1", "01", "00.10", "1,00", "1..0",
		"１", "1.0.0", "100000000.01", "999999999", "0.001", "NaN", "Inf", "1_000", "1.2\x00", "¥1",
	} {
		if got, err := ParseYuan(s); !errors.Is(err, ErrYuan) {
			t.Errorf("ParseYuan(%q) = %d, %v; want ErrYuan", s, got, err)
		}
	}
}

func TestFormatYuan(t *testing.T) {
	for fen, want := range map[int64]string{0: "0.00", 1: "0.01", 10: "0.10", 1230: "12.30", 100: "1.00", 9999999999: "99999999.99", -5: "-0.05", -1230: "-12.30"} {
		if got := FormatYuan(fen); got != want {
			t.Errorf("FormatYuan(%d) = %q, want %q", fen, got, want)
		}
	}
}

// plainYuan is the rule ParseYuan implements, written as a pattern.
var plainYuan = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$`)

// FuzzParseYuan holds ParseYuan to the pattern and to an independent
// computation of the value, and FormatYuan to its inverse.
func FuzzParseYuan(f *testing.F) {
	for _, s := range []string{"0", "0.1", "0.10", "12.34", "1e-1", "+1", " 1", "1.", ".5", "1.234", "-1", "0x1", "100000000.00", "100000000.01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fen, err := ParseYuan(s)
		if !plainYuan.MatchString(s) {
			if err == nil {
				t.Fatalf("ParseYuan(%q) = %d, want an error", s, fen)
			}
			return
		}
		// An independent value: whole yuan and cents through strconv.
		whole, frac := s, "00"
		for i := range len(s) {
			if s[i] == '.' {
				whole, frac = s[:i], (s[i+1:] + "0")[:2]
			}
		}
		w, werr := strconv.ParseInt(whole, 10, 64)
		c, _ := strconv.ParseInt(frac, 10, 64)
		if werr != nil || w > MaxYuanFen/100 || w*100+c > MaxYuanFen {
			if err == nil {
				t.Fatalf("ParseYuan(%q) = %d, want an error above the maximum", s, fen)
			}
			return
		}
		if err != nil || fen != w*100+c {
			t.Fatalf("ParseYuan(%q) = %d, %v; want %d", s, fen, err, w*100+c)
		}
		back, err := ParseYuan(FormatYuan(fen))
		if err != nil || back != fen {
			t.Fatalf("ParseYuan(FormatYuan(%d)) = %d, %v", fen, back, err)
		}
	})
}
