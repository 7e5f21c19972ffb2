// Package identity knows who the caller is: it issues and checks the signed,
// short-lived session tokens payfn hands out at login, exchanges a wx.login
// code for the user's openid through WeChat's jscode2session, and, in
// platform mode, accepts the caller a mini-program platform names
// (platform.go).
//
// It implements app.Sessions and app.CodeExchanger and imports only
// shared/app; no database driver, WeChat Pay SDK or cloud runtime.
package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/payfn/payfn/shared/app"
)

// MinSecretBytes is the shortest session secret accepted: HMAC-SHA256 wants a
// key at least as long as its output.
const MinSecretBytes = 32

// maxClockSkew tolerates a token issued by an instance whose clock runs a
// little ahead of this one.
const maxClockSkew = time.Minute

const tokenVersion = "v1"

// Tokens issues and verifies session tokens of the form
// "v1.<base64url payload>.<base64url HMAC-SHA256>". The payload names the
// openid and the expiry; nothing in it is secret, and nothing in it can be
// changed without the key.
type Tokens struct {
	secret   []byte
	previous [][]byte // still verify, never sign: a rotation's old secrets
	ttl      time.Duration
	now      func() time.Time
}

type claims struct {
	Sub string `json:"sub"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
}

// NewTokens returns a token issuer. secret must be at least MinSecretBytes
// long and ttl positive; now defaults to time.Now. Tokens are signed with
// secret; previous secrets (empty ones are ignored) still verify tokens they
// signed, so a rotation logs nobody out: keep the old secret as previous for
// at least ttl after the switch.
func NewTokens(secret []byte, ttl time.Duration, now func() time.Time, previous ...[]byte) (*Tokens, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("session secret is %d bytes, need at least %d", len(secret), MinSecretBytes)
	}
	var prev [][]byte
	for _, p := range previous {
		if len(p) == 0 {
			continue
		}
		if len(p) < MinSecretBytes {
			return nil, fmt.Errorf("previous session secret is %d bytes, need at least %d", len(p), MinSecretBytes)
		}
		prev = append(prev, append([]byte(nil), p...))
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("session ttl %s is not positive", ttl)
	}
	if now == nil {
		now = time.Now
	}
	return &Tokens{secret: append([]byte(nil), secret...), previous: prev, ttl: ttl, now: now}, nil
}

// Issue returns a token for openid and its expiry.
func (t *Tokens) Issue(openid string) (string, time.Time, error) {
	if openid == "" {
		return "", time.Time{}, errors.New("issue token: empty openid")
	}
	now := t.now()
	exp := now.Add(t.ttl)
	payload, err := json.Marshal(claims{Sub: openid, Iat: now.Unix(), Exp: exp.Unix()})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue token: %w", err)
	}
	signed := tokenVersion + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac(t.secret, signed)), time.Unix(exp.Unix(), 0).UTC(), nil
}

// Verify returns the openid the token was issued for. Every failure wraps
// app.ErrBadToken and says why without echoing the token.
func (t *Tokens) Verify(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] != tokenVersion {
		return "", fmt.Errorf("malformed token: %w", app.ErrBadToken)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", fmt.Errorf("malformed token signature: %w", app.ErrBadToken)
	}
	// hmac.Equal compares in constant time, so timing reveals nothing of the
	// MAC. Every secret is tried, so timing does not tell which one matched.
	signed := parts[0] + "." + parts[1]
	ok := hmac.Equal(sig, mac(t.secret, signed))
	for _, p := range t.previous {
		ok = hmac.Equal(sig, mac(p, signed)) || ok
	}
	if !ok {
		return "", fmt.Errorf("token signature does not verify: %w", app.ErrBadToken)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("malformed token payload: %w", app.ErrBadToken)
	}
	var c claims
	if err := json.Unmarshal(raw, &c); err != nil || c.Sub == "" {
		return "", fmt.Errorf("malformed token claims: %w", app.ErrBadToken)
	}
	now := t.now()
	if now.Unix() >= c.Exp {
		return "", fmt.Errorf("token expired: %w", app.ErrBadToken)
	}
	if c.Iat > now.Add(maxClockSkew).Unix() {
		return "", fmt.Errorf("token issued in the future: %w", app.ErrBadToken)
	}
	return c.Sub, nil
}

func mac(secret []byte, signed string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signed))
	return m.Sum(nil)
}
