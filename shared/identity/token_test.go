package identity_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/identity"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func newTokens(t *testing.T, now *time.Time) *identity.Tokens {
	t.Helper()
	tok, err := identity.NewTokens(secret, time.Hour, func() time.Time { return *now })
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestIssuedTokenVerifiesToItsOpenID(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tok := newTokens(t, &now)
	s, exp, err := tok.Issue("o-user-1")
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(time.Hour)) {
		t.Errorf("expiry %v, want %v", exp, now.Add(time.Hour))
	}
	got, err := tok.Verify(s)
	if err != nil || got != "o-user-1" {
		t.Fatalf("Verify = %q, %v; want o-user-1", got, err)
	}
}

func TestTokenRejectedWhenExpiredForgedOrMalformed(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tok := newTokens(t, &now)
	good, _, _ := tok.Issue("o-user-1")
	other, err := identity.NewTokens([]byte("another-secret-another-secret-xx"), time.Hour, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	forged, _, _ := other.Issue("o-user-1")
	parts := strings.Split(good, ".")
	otherUser, _, _ := tok.Issue("o-user-2")
	swapped := parts[0] + "." + strings.Split(otherUser, ".")[1] + "." + parts[2]

	cases := map[string]struct {
		token string
		at    time.Time
	}{
		"expired":                 {good, now.Add(time.Hour)},
		"signed with another key": {forged, now},
		"payload swapped":         {swapped, now},
		"empty":                   {"", now},
		"two parts":               {parts[0] + "." + parts[1], now},
		"bad base64 signature":    {parts[0] + "." + parts[1] + ".!!!", now},
		"other version":           {"v2." + parts[1] + "." + parts[2], now},
		"issued in the future":    {good, now.Add(-2 * time.Minute)},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			at := c.at
			tok := newTokens(t, &at)
			if _, err := tok.Verify(c.token); !errors.Is(err, app.ErrBadToken) {
				t.Fatalf("Verify error = %v, want ErrBadToken", err)
			}
		})
	}
}

func TestShortSecretRefused(t *testing.T) {
	if _, err := identity.NewTokens([]byte("short"), time.Hour, nil); err == nil {
		t.Fatal("NewTokens accepted a 5-byte secret")
	}
}

func TestPreviousSecretVerifiesButNeverSigns(t *testing.T) {
	oldSecret, newSecret := []byte(strings.Repeat("o", 32)), []byte(strings.Repeat("n", 32))
	before, err := identity.NewTokens(oldSecret, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	oldToken, _, err := before.Issue("o-buyer")
	if err != nil {
		t.Fatal(err)
	}
	during, err := identity.NewTokens(newSecret, time.Hour, nil, oldSecret)
	if err != nil {
		t.Fatal(err)
	}
	if sub, err := during.Verify(oldToken); err != nil || sub != "o-buyer" {
		t.Fatalf("a token signed with the previous secret: %q, %v; want it valid", sub, err)
	}
	newToken, _, _ := during.Issue("o-buyer")
	if _, err := before.Verify(newToken); err == nil {
		t.Fatal("a token issued during the rotation verifies with the old secret alone: it was signed with the previous secret")
	}
	after, _ := identity.NewTokens(newSecret, time.Hour, nil)
	if _, err := after.Verify(oldToken); !errors.Is(err, app.ErrBadToken) {
		t.Fatalf("the old secret, dropped, still verifies: %v", err)
	}
	if _, err := identity.NewTokens(newSecret, time.Hour, nil, []byte("short")); err == nil {
		t.Fatal("a short previous secret was accepted")
	}
}
