package alipay

import (
	"errors"
	"strconv"
)

// MaxYuanFen is the largest amount ParseYuan accepts: Alipay's upper bound
// for total_amount, 100000000 yuan.
const MaxYuanFen = 100_000_000 * 100

// ErrYuan is returned by ParseYuan for anything that is not a plain yuan
// amount.
var ErrYuan = errors.New("not a plain yuan amount (digits, at most two decimals)")

// ParseYuan parses an amount Alipay sends as a decimal string in yuan into
// fen, with integer arithmetic only: "12", "12.3" and "12.30" are 1200,
// 1230 and 1230 fen; "0.1" and "0.10" are both 10 fen. Anything else wraps
// ErrYuan: a sign ("+1", "-1"), an exponent ("1e-1"), white space, a bare or
// trailing point (".5", "1."), more than two decimals ("1.234"), hex
// ("0x1"), a leading zero before other digits ("01"), and amounts above
// MaxYuanFen. Zero ("0", "0.00") parses; callers that need a positive
// amount check it.
func ParseYuan(s string) (int64, error) {
	n := len(s)
	if n == 0 || n > 12 { // "100000000.00" is the longest
		return 0, ErrYuan
	}
	i, fen := 0, int64(0)
	for i < n && s[i] >= '0' && s[i] <= '9' {
		fen = fen*10 + int64(s[i]-'0')
		i++
	}
	if i == 0 || (i > 1 && s[0] == '0') {
		return 0, ErrYuan
	}
	fen *= 100
	if i < n {
		// Only a point and one or two digits may follow.
		if s[i] != '.' || n-i < 2 || n-i > 3 {
			return 0, ErrYuan
		}
		for j, scale := i+1, int64(10); j < n; j, scale = j+1, scale/10 {
			c := s[j]
			if c < '0' || c > '9' {
				return 0, ErrYuan
			}
			fen += int64(c-'0') * scale
		}
	}
	if fen > MaxYuanFen {
		return 0, ErrYuan
	}
	return fen, nil
}

// FormatYuan writes fen as Alipay's yuan with exactly two decimals: 1230 is
// "12.30", 5 is "0.05". A negative amount gets a leading "-" (ParseYuan
// refuses it; Alipay never takes one).
func FormatYuan(fen int64) string {
	sign, u := "", uint64(fen)
	if fen < 0 {
		sign, u = "-", -u
	}
	c := u % 100
	return sign + strconv.FormatUint(u/100, 10) + "." + string([]byte{byte('0' + c/10), byte('0' + c%10)})
}
