package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one delivery attempt, connect to last byte read.
// The spec recommends 15 to 30 s; the low end keeps a slow receiver from
// holding a dispatcher worker.
const DefaultTimeout = 15 * time.Second

// DefaultUserAgent is sent when SenderOptions.UserAgent is empty.
const DefaultUserAgent = "payfn-webhooks/1"

// MaxRetryAfter caps Result.RetryAfter, so a receiver cannot park a delivery
// for longer than the whole retry schedule with one header.
const MaxRetryAfter = 24 * time.Hour

// maxDrain is how much of a response body is read. Nothing in it is used;
// reading a little lets small responses free their connection for reuse,
// and the cap keeps a hostile receiver from streaming forever.
const maxDrain = 4 << 10

// SenderOptions configures a Sender. The zero value is the production
// setting.
type SenderOptions struct {
	// AllowPrivate permits loopback, private, link-local and other
	// non-public targets. Only for the local stack and tests: in production
	// it lets any registered endpoint reach payfn's own network.
	AllowPrivate bool
	// Timeout bounds each attempt; zero means DefaultTimeout.
	Timeout time.Duration
	// UserAgent identifies the sender; empty means DefaultUserAgent.
	UserAgent string
}

// Sender posts signed webhook bodies. It is safe for concurrent use and
// keeps connections alive per host, so build one and share it.
type Sender struct {
	client    *http.Client
	timeout   time.Duration
	userAgent string
}

// NewSender returns a Sender with its own Transport: no proxy from the
// environment (a proxy would dial on our behalf, past the address check),
// and enough idle connections per host that hundreds of deliveries a second
// to one receiver reuse connections instead of redialling.
func NewSender(opts SenderOptions) *Sender {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	if !opts.AllowPrivate {
		dialer.Control = refuseNonPublic
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true, // a custom DialContext turns it off otherwise
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    10 * time.Second,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true, // the body is discarded; don't ask for gzip
	}
	return &Sender{
		client: &http.Client{
			Transport: transport,
			// A 3xx is a failed attempt (the spec: update the URL instead);
			// following it would also let a public endpoint bounce us to an
			// internal one.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout:   opts.Timeout,
		userAgent: opts.UserAgent,
	}
}

// CloseIdleConnections closes kept-alive connections, for shutdown.
func (s *Sender) CloseIdleConnections() { s.client.CloseIdleConnections() }

// Result is the outcome of one delivery attempt.
type Result struct {
	// Status is the HTTP status, 0 if no response arrived.
	Status int
	// Latency is the time from the start of the attempt to the end of
	// reading the (capped) response.
	Latency time.Duration
	// RetryAfter is the receiver's Retry-After (seconds or HTTP-date),
	// read only on 429 and 5xx responses, capped at MaxRetryAfter; 0 if
	// absent or unparsable.
	RetryAfter time.Duration
	// Err is set when no HTTP response arrived: a refused URL or address
	// (ErrInvalidURL, ErrForbiddenAddress), a connect or TLS failure, or the
	// timeout (errors.Is context.DeadlineExceeded). A non-2xx response is
	// not an error here; check OK.
	Err error
}

// OK reports a successful delivery: a 2xx response.
func (r Result) OK() bool { return r.Err == nil && r.Status >= 200 && r.Status <= 299 }

// Gone reports a 410: the receiver asks for the endpoint to be disabled.
func (r Result) Gone() bool { return r.Err == nil && r.Status == http.StatusGone }

// Send makes one POST attempt of body (JSON) with header (normally from
// Headers) to rawURL. It never follows redirects, reads at most a few KB of
// the response and discards it, and unless the Sender allows private
// targets refuses to connect to any non-public address, checked on the
// resolved IP at connect time.
func (s *Sender) Send(ctx context.Context, rawURL string, header http.Header, body []byte) Result {
	start := time.Now()
	u, err := parseTarget(rawURL)
	if err != nil {
		return Result{Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return Result{Err: fmt.Errorf("webhook: building request to %s: %w", u.Host, err)}
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.userAgent)

	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the URL: its query may hold the receiver's token
		}
		return Result{Latency: time.Since(start), Err: fmt.Errorf("webhook: POST to %s: %w", u.Host, err)}
	}
	// The status is the receiver's answer; a failure while draining the
	// body does not change it.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()

	res := Result{Status: resp.StatusCode, Latency: time.Since(start)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return res
}

// parseRetryAfter reads delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
				return MaxRetryAfter
			}
			return 0
		}
		if n >= uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter)
}
