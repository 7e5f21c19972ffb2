package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of Standard Webhooks v1. http.Header canonicalizes them
// (Webhook-Id, …); header names are case-insensitive, so receivers see the
// same thing either way.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix marks a Standard Webhooks HMAC secret. The HMAC key is the
// base64-decoded bytes after it, not the string itself.
const SecretPrefix = "whsec_"

// Secret sizes allowed by the spec (192 to 512 bits).
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// DefaultTolerance is how far a webhook-timestamp may be from the
// receiver's clock, in either direction. It bounds how long a captured
// request can be replayed, and matches the reference libraries.
const DefaultTolerance = 5 * time.Minute

// Errors returned (wrapped) by the functions in this file. Test with
// errors.Is; the wrapping message says more, but never contains a secret.
var (
	// ErrInvalidSecret: the secret is not whsec_ + base64 of 24 to 64 bytes.
	ErrInvalidSecret = errors.New("webhook: invalid secret")
	// ErrMissingHeaders: webhook-id, webhook-timestamp or webhook-signature
	// is absent or empty.
	ErrMissingHeaders = errors.New("webhook: missing webhook headers")
	// ErrBadTimestamp: webhook-timestamp is not unix seconds.
	ErrBadTimestamp = errors.New("webhook: malformed webhook-timestamp")
	// ErrNoMatchingSignature: no v1 signature in webhook-signature matches
	// the body, id and timestamp under the secret (forged, tampered, or
	// signed with another secret).
	ErrNoMatchingSignature = errors.New("webhook: no matching signature")
	// ErrTooOld: the signature is valid but the timestamp is older than the
	// tolerance (a replay, or the receiver's clock is ahead).
	ErrTooOld = errors.New("webhook: timestamp too old")
	// ErrTooNew: the signature is valid but the timestamp is further in the
	// future than the tolerance (the receiver's clock is behind).
	ErrTooNew = errors.New("webhook: timestamp too new")
)

// NewSecret returns a fresh secret of 32 random bytes, spelled whsec_ +
// standard base64.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook: generating a secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// ParseSecret returns the HMAC key of a secret written with or without the
// whsec_ prefix (receivers copy it both ways; the reference libraries accept
// both). It returns ErrInvalidSecret for anything but standard base64 of 24
// to 64 bytes; the error never repeats the secret.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), SecretPrefix)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: expected %s followed by standard base64: %w", ErrInvalidSecret, SecretPrefix, err)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("%w: decodes to %d bytes, want %d to %d", ErrInvalidSecret, len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// Sign returns the v1 signature of one attempt: "v1," + base64 of
// HMAC-SHA256 over id + "." + unix seconds of ts + "." + body.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, strconv.FormatInt(ts.Unix(), 10), body)), nil
}

// Headers returns the three Standard Webhooks headers for one attempt,
// with one v1 signature per secret. During a rotation pass the new and the
// previous secret, so receivers holding either one accept the delivery.
// Call it for every attempt: a retry needs a fresh timestamp or receivers
// reject it as too old.
//
// id must be non-empty printable ASCII with no space or '.': the spec forbids
// '.' because it delimits the signed fields.
func Headers(secrets []string, id string, ts time.Time, body []byte) (http.Header, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("webhook: signing %q: no secret given", id)
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	unix := ts.Unix()
	if unix < 0 {
		return nil, fmt.Errorf("webhook: signing %q: timestamp %v is before 1970", id, ts)
	}
	tsText := strconv.FormatInt(unix, 10)
	sigs := make([]string, 0, len(secrets))
	for i, s := range secrets {
		key, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("webhook: signing %q with secret #%d: %w", id, i, err)
		}
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac(key, id, tsText, body)))
	}
	h := make(http.Header, 3)
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, tsText)
	h.Set(HeaderSignature, strings.Join(sigs, " "))
	return h, nil
}

func checkID(id string) error {
	if id == "" {
		return fmt.Errorf("webhook: empty webhook id")
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '.' {
			return fmt.Errorf("webhook: webhook id %q: byte %d is not printable ASCII, or is a space or '.'", id, i)
		}
	}
	return nil
}

// Verify checks a delivery against secret at the current time with
// DefaultTolerance. See VerifyAt.
func Verify(secret string, header http.Header, body []byte) error {
	return VerifyAt(secret, header, body, time.Now(), DefaultTolerance)
}

// VerifyAt checks that header carries a v1 signature of body under secret,
// and that its timestamp is within tolerance of now, either way (tolerance
// <= 0 means DefaultTolerance; there is no way to turn the check off, since
// without it a captured request replays forever). body must be the raw
// request body.
//
// Signatures of other versions (v1a, …) are ignored; any one matching v1
// signature is enough, which is what lets the sender rotate secrets.
// Comparison is constant-time so a failed check does not reveal how much of
// a guessed signature was right.
//
// The signature is checked before the timestamp, so ErrTooOld and ErrTooNew
// mean "authentic but outside the window" (a replay or a clock off), never a
// forgery. Errors wrap ErrInvalidSecret, ErrMissingHeaders, ErrBadTimestamp,
// ErrNoMatchingSignature, ErrTooOld or ErrTooNew.
func VerifyAt(secret string, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := ParseSecret(secret)
	if err != nil {
		// A receiver misconfiguration: report it whatever the request is.
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}

	id := header.Get(HeaderID)
	tsText := header.Get(HeaderTimestamp)
	// Proxies may split a long list over several header lines; take them all.
	sigList := strings.Join(header.Values(HeaderSignature), " ")
	var missing []string
	if id == "" {
		missing = append(missing, HeaderID)
	}
	if tsText == "" {
		missing = append(missing, HeaderTimestamp)
	}
	if strings.TrimSpace(sigList) == "" {
		missing = append(missing, HeaderSignature)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrMissingHeaders, strings.Join(missing, ", "))
	}

	ts, err := parseUnix(tsText)
	if err != nil {
		return err
	}

	// The timestamp is signed as sent: a sender's canonical decimal, and
	// anything else simply fails to match.
	want := mac(key, id, tsText, body)
	if !anyMatch(sigList, want) {
		return fmt.Errorf("%w (webhook-id %q)", ErrNoMatchingSignature, clip(id))
	}

	// Whole seconds on both sides, like the header; integer arithmetic so a
	// huge timestamp cannot overflow time.Time into a wrong verdict.
	nowSec := now.Unix()
	tol := int64(tolerance / time.Second)
	switch {
	case ts < nowSec-tol:
		return fmt.Errorf("%w: webhook-timestamp %d is %ds behind this server's clock, tolerance %v", ErrTooOld, ts, nowSec-ts, tolerance)
	case ts > nowSec+tol:
		return fmt.Errorf("%w: webhook-timestamp %d is %ds ahead of this server's clock, tolerance %v", ErrTooNew, ts, ts-nowSec, tolerance)
	}
	return nil
}

// parseUnix accepts only decimal digits: ParseInt would also take a sign.
func parseUnix(s string) (int64, error) {
	if len(s) > 19 {
		return 0, fmt.Errorf("%w: %q is too long", ErrBadTimestamp, clip(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: %q is not unix seconds", ErrBadTimestamp, clip(s))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %w", ErrBadTimestamp, clip(s), err)
	}
	return n, nil
}

func anyMatch(list string, want []byte) bool {
	for _, entry := range strings.Fields(list) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		// Strict: a signature has one spelling, as in the reference
		// libraries, which compare the base64 text.
		got, err := base64.StdEncoding.Strict().DecodeString(sig)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func mac(key []byte, id, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// clip bounds attacker-supplied text quoted in errors, which receivers log.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
