package webhook

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestForbidden(t *testing.T) {
	refuse := []string{
		"127.0.0.1", "127.255.0.9", "::1",
		"0.0.0.0", "::", "0.1.2.3",
		"10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1", "fc00::1", "fd12:3456::1",
		"169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0",
		"100.64.0.1", "100.127.255.254",
		"224.0.0.1", "239.255.255.250", "ff02::1", "255.255.255.255", "240.0.0.1",
		"192.0.0.8", "192.0.2.1", "198.18.0.1", "198.51.100.7", "203.0.113.9", "2001:db8::1",
		"::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::127.0.0.1",
		"64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a9fe:a9fe::", "64:ff9b:1::1",
		"fec0::1", "2001::1", "100::1",
	}
	for _, s := range refuse {
		if forbidden(netip.MustParseAddr(s)) == "" {
			t.Errorf("forbidden(%s) = \"\", want a reason", s)
		}
		if err := refuseNonPublic("tcp", netip.AddrPortFrom(netip.MustParseAddr(s), 443).String(), nil); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("refuseNonPublic(%s) = %v, want ErrForbiddenAddress", s, err)
		}
	}
	allow := []string{
		"8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.32.0.1", "192.169.0.1",
		"2606:4700:4700::1111", "2a00:1450:4001::1", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
	}
	for _, s := range allow {
		if r := forbidden(netip.MustParseAddr(s)); r != "" {
			t.Errorf("forbidden(%s) = %q, want public", s, r)
		}
		if err := refuseNonPublic("tcp", netip.AddrPortFrom(netip.MustParseAddr(s), 443).String(), nil); err != nil {
			t.Errorf("refuseNonPublic(%s) = %v", s, err)
		}
	}
	// Fail closed on anything but ip:port.
	for _, a := range []string{"localhost:80", "garbage", ""} {
		if err := refuseNonPublic("tcp", a, nil); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("refuseNonPublic(%q) = %v, want ErrForbiddenAddress", a, err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	cases := []struct {
		url          string
		allowPrivate bool
		want         error
	}{
		{"https://hooks.example.com/payfn?token=x", false, nil},
		{"https://hooks.example.com:8443/payfn", false, nil},
		{"https://8.8.8.8/hook", false, nil},
		{"https://[2606:4700:4700::1111]/hook", false, nil},
		{"http://hooks.example.com/payfn", false, ErrInvalidURL},
		{"http://hooks.example.com/payfn", true, nil},
		{"http://127.0.0.1:8080/hook", true, nil},
		{"http://localhost:8080/hook", true, nil},
		{"HTTPS://hooks.example.com/", false, nil},
		{"ftp://hooks.example.com/", true, ErrInvalidURL},
		{"javascript:alert(1)", true, ErrInvalidURL},
		{"/relative/path", true, ErrInvalidURL},
		{"https://", true, ErrInvalidURL},
		{"https://:443/", true, ErrInvalidURL},
		{"https://user:pass@hooks.example.com/", true, ErrInvalidURL},
		{"https://user@hooks.example.com/", false, ErrInvalidURL},
		{"https://hooks.example.com:0/", true, ErrInvalidURL},
		{"https://hooks.example.com:99999/", true, ErrInvalidURL},
		{"https://hooks.example.com/%zz", true, ErrInvalidURL},
		{"https://127.0.0.1/", false, ErrForbiddenAddress},
		{"https://169.254.169.254/latest/meta-data/", false, ErrForbiddenAddress},
		{"https://10.1.2.3/", false, ErrForbiddenAddress},
		{"https://100.64.1.1/", false, ErrForbiddenAddress},
		{"https://[::1]/", false, ErrForbiddenAddress},
		{"https://[::ffff:127.0.0.1]/", false, ErrForbiddenAddress},
		{"https://[fe80::1%25eth0]/", false, ErrForbiddenAddress},
		{"https://localhost/", false, ErrForbiddenAddress},
		{"https://LocalHost./", false, ErrForbiddenAddress},
		{"https://api.localhost/", false, ErrForbiddenAddress},
		{"https://2130706433/", false, ErrInvalidURL},
		{"https://127.1/", false, ErrInvalidURL},
		{"https://0x7f.1/", false, ErrInvalidURL},
		{"https://hooks.example.com./", false, nil},
	}
	for _, c := range cases {
		err := CheckURL(c.url, c.allowPrivate)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("CheckURL(%q, %v) = %v, want %v", c.url, c.allowPrivate, err, c.want)
		}
	}
	// Errors must not repeat a URL's credentials or query.
	err := CheckURL("https://user:hunter2@hooks.example.com/?token=s3cret", false)
	if err == nil || containsAny(err.Error(), "hunter2", "s3cret") {
		t.Errorf("CheckURL error leaks the URL's secrets: %v", err)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"120", 2 * time.Minute},
		{" 7 ", 7 * time.Second},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"999999999999999999999999", MaxRetryAfter},
		{"86401", MaxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(72 * time.Hour).Format(http.TimeFormat), MaxRetryAfter},
		{"Sunday, 01-Mar-26 12:01:00 GMT", time.Minute}, // RFC 850, still valid to receive
	}
	for _, c := range cases {
		if got := parseRetryAfter(c.v, now); got != c.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", c.v, got, c.want)
		}
	}
}
