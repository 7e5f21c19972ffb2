// Package secrets fetches payfn's secret from where a deployment keeps it:
// AWS Secrets Manager on Lambda, Tencent Cloud SSM on SCF, or a file. The
// secret is one JSON object whose keys are the names of the settings it
// holds (PAYFN_SESSION_SECRET, WECHATPAY_MCH_PRIVATE_KEY, ...), exactly as
// shared/config names them; shared/setup lays it over the environment.
//
// Both clouds are spoken to over plain HTTPS with a small signer of our own
// (SigV4, TC3-HMAC-SHA256) instead of their SDKs: each function binary stays
// small, and nothing of a cloud SDK reaches the rest of payfn. Credentials
// are the function role's temporary ones, which each runtime puts in the
// environment.
//
// No error, log line or panic of this package carries a secret value: errors
// name the secret and the store's error code, never the response body.
//
// It imports nothing of payfn's.
package secrets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"
)

// Secret is one fetched version of the secret.
type Secret struct {
	Values map[string]string
	// Version changes whenever the content does: a hash of it, whatever
	// the store calls its versions.
	Version string
}

// Source fetches the secret's current version.
type Source interface {
	Fetch(ctx context.Context) (Secret, error)
}

// ErrUnavailable wraps every failure to reach the store or to get an answer
// from it, as opposed to a secret that is there but malformed.
var ErrUnavailable = errors.New("secret store unavailable")

// Parse reads a secret's text: a JSON object of string values. The error
// says what is wrong in terms of structure only, never the content.
func Parse(raw []byte) (Secret, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return Secret{}, errors.New("the secret is not a JSON object")
	}
	vals := make(map[string]string, len(m))
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return Secret{}, fmt.Errorf("the secret's key %q is not a string", k)
		}
		vals[k] = s
	}
	sum := sha256.Sum256(raw)
	return Secret{Values: vals, Version: hex.EncodeToString(sum[:8])}, nil
}

// Options name a secret and where it is kept.
type Options struct {
	Kind       string // "aws-secretsmanager", "tencent-ssm" or "file"
	ID         string // the secret's name or ARN; a path for "file"
	Endpoint   string // default the platform's regional endpoint
	Getenv     func(string) string
	HTTPClient *http.Client // default: 5 s timeout
	Now        func() time.Time
}

// New returns the Source opts describe.
func New(opts Options) (Source, error) {
	if opts.ID == "" {
		return nil, errors.New("no secret id")
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.HTTPClient == nil {
		// Short: a secret fetch happens inside an invocation, which must
		// answer well within the function's timeout.
		opts.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	switch opts.Kind {
	case "file":
		return File{Path: opts.ID}, nil
	case "aws-secretsmanager":
		return newAWS(opts)
	case "tencent-ssm":
		return newTencent(opts)
	}
	return nil, fmt.Errorf("unknown secret source %q", opts.Kind)
}

// File is a secret kept in a local JSON file (the local stack, other hosts).
type File struct{ Path string }

// Fetch reads the file.
func (f File) Fetch(context.Context) (Secret, error) {
	raw, err := os.ReadFile(f.Path)
	if err != nil {
		return Secret{}, fmt.Errorf("secret file: %w: %w", ErrUnavailable, err)
	}
	s, err := Parse(raw)
	if err != nil {
		return Secret{}, fmt.Errorf("secret file %s: %w", f.Path, err)
	}
	return s, nil
}
