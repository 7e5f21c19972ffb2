package app

import (
	"regexp"
	"strings"
	"testing"
)

func TestValidOrderIDAcceptsExactlyWhatWeChatsOutTradeNoPatternAccepts(t *testing.T) {
	want := regexp.MustCompile(`^[0-9A-Za-z_|*-]{6,32}$`)
	cases := []string{"", "PF2026", "PF20261201101957Y8G6DGCDSZ6W", strings.Repeat("a", 32), strings.Repeat("a", 33), "abcde", "abc-de|*_", "abc de1", "abcdé1", "abc\x00def", "ABCDEF\n"}
	for b := 0; b < 256; b++ {
		cases = append(cases, "abcde"+string(rune(b)), "abcde"+string([]byte{byte(b)}))
	}
	for _, c := range cases {
		if got := validOrderID(c); got != want.MatchString(c) {
			t.Errorf("validOrderID(%q) = %v, the pattern says %v", c, got, !got)
		}
	}
}
