package webhook_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/webhook"
)

// local is a Sender for tests against httptest servers on 127.0.0.1.
func local(t testing.TB, timeout time.Duration) *webhook.Sender {
	t.Helper()
	s := webhook.NewSender(webhook.SenderOptions{AllowPrivate: true, Timeout: timeout, UserAgent: "payfn-test"})
	t.Cleanup(s.CloseIdleConnections)
	return s
}

func TestSendDeliversAndVerifies(t *testing.T) {
	body := []byte(`{"type":"order.paid","data":{"id":"ord_1"}}`)
	var got struct {
		method, contentType, userAgent string
		err                            error
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.method, got.contentType, got.userAgent = r.Method, r.Header.Get("Content-Type"), r.UserAgent()
		got.err = webhook.Verify(vectorSecret, r.Header, b)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	h, err := webhook.Headers([]string{vectorSecret}, "evt_1", time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	res := local(t, 0).Send(context.Background(), srv.URL+"/hook", h, body)
	if res.Err != nil || res.Status != http.StatusNoContent || !res.OK() || res.Gone() {
		t.Fatalf("Send = %+v, want OK 204", res)
	}
	if res.Latency <= 0 {
		t.Errorf("Latency = %v", res.Latency)
	}
	if got.method != http.MethodPost || got.contentType != "application/json" || got.userAgent != "payfn-test" {
		t.Errorf("receiver saw %s, Content-Type %q, User-Agent %q", got.method, got.contentType, got.userAgent)
	}
	if got.err != nil {
		t.Errorf("receiver's Verify: %v", got.err)
	}
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res := local(t, 0).Send(context.Background(), srv.URL+"/hook", nil, []byte(`{}`))
	if res.Status != http.StatusFound || res.OK() || res.Err != nil {
		t.Errorf("Send = %+v, want a failed attempt with status 302 and no error", res)
	}
	if followed.Load() != 0 {
		t.Error("the redirect was followed")
	}
}

func TestSendStatuses(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/gone":
			w.WriteHeader(http.StatusGone)
		case "/slow-down":
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/later":
			w.Header().Set("Retry-After", date)
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/moved":
			// Retry-After on a 3xx means something else; it is not read.
			w.Header().Set("Retry-After", "60")
			w.WriteHeader(http.StatusMovedPermanently)
		case "/big":
			// A large answer is read only up to the cap and dropped.
			_, _ = io.Copy(w, io.LimitReader(zeros{}, 10<<20))
		}
	}))
	defer srv.Close()
	s := local(t, 0)
	send := func(path string) webhook.Result {
		return s.Send(context.Background(), srv.URL+path, nil, []byte(`{}`))
	}

	if r := send("/gone"); !r.Gone() || r.OK() || r.Status != 410 {
		t.Errorf("410: %+v, want Gone", r)
	}
	if r := send("/slow-down"); r.Status != 429 || r.RetryAfter != 2*time.Minute || r.OK() {
		t.Errorf("429: %+v, want RetryAfter 2m", r)
	}
	if r := send("/later"); r.Status != 503 || r.RetryAfter < 80*time.Second || r.RetryAfter > 91*time.Second {
		t.Errorf("503 with an HTTP-date: %+v, want RetryAfter about 90s", r)
	}
	if r := send("/moved"); r.Status != 301 || r.RetryAfter != 0 || r.OK() {
		t.Errorf("301: %+v, want a failure with no RetryAfter", r)
	}
	if r := send("/big"); !r.OK() {
		t.Errorf("10 MiB answer: %+v, want OK", r)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestSendTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice the client hang up.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer srv.Close()

	start := time.Now()
	res := local(t, 200*time.Millisecond).Send(context.Background(), srv.URL, nil, []byte(`{}`))
	if res.Err == nil || res.Status != 0 || res.OK() {
		t.Fatalf("Send = %+v, want a timeout error", res)
	}
	if !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("Err = %v, want it to wrap context.DeadlineExceeded", res.Err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Send took %v with a 200ms timeout", el)
	}
}

func TestSendRefusesPrivateAddresses(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	guarded := webhook.NewSender(webhook.SenderOptions{})
	defer guarded.CloseIdleConnections()
	// The literal address, and a name that resolves to it: the name proves
	// the check runs on the resolved IP at connect time, not on the URL.
	for _, u := range []string{srv.URL, "http://localhost:" + port + "/hook"} {
		res := guarded.Send(context.Background(), u, nil, []byte(`{}`))
		if !errors.Is(res.Err, webhook.ErrForbiddenAddress) || res.Status != 0 {
			t.Errorf("Send(%s) without AllowPrivate = %+v, want ErrForbiddenAddress", u, res)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback server was reached %d times", hits.Load())
	}

	if res := local(t, 0).Send(context.Background(), srv.URL, nil, []byte(`{}`)); !res.OK() {
		t.Errorf("Send with AllowPrivate = %+v, want OK", res)
	}
	if hits.Load() != 1 {
		t.Errorf("hits = %d, want 1", hits.Load())
	}
}

func TestSendRejectsBadURLs(t *testing.T) {
	s := local(t, 0)
	for _, u := range []string{"ftp://example.com/", "file:///etc/passwd", "http://user:pw@127.0.0.1/", "http:///nohost", "://x"} {
		res := s.Send(context.Background(), u, nil, nil)
		if !errors.Is(res.Err, webhook.ErrInvalidURL) {
			t.Errorf("Send(%q) = %+v, want ErrInvalidURL", u, res)
		}
		if res.Err != nil && strings.Contains(res.Err.Error(), "pw@") {
			t.Errorf("error repeats the credentials: %v", res.Err)
		}
	}
}

// TestSendReusesConnections: a dispatcher's throughput to one receiver rests
// on keep-alive; redialling per delivery would cap it and exhaust ports.
func TestSendReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	s := local(t, 0)
	body := []byte(`{"type":"order.paid"}`)

	for i := 0; i < 50; i++ {
		if res := s.Send(context.Background(), srv.URL, nil, body); !res.OK() {
			t.Fatalf("sequential send %d: %+v", i, res)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("50 sequential sends opened %d connections, want 1", n)
	}

	const workers, total = 32, 1000
	var wg sync.WaitGroup
	var failed atomic.Int32
	next := make(chan struct{}, total)
	for range total {
		next <- struct{}{}
	}
	close(next)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for range next {
				if res := s.Send(context.Background(), srv.URL, nil, body); !res.OK() {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	if failed.Load() != 0 {
		t.Fatalf("%d of %d concurrent sends failed", failed.Load(), total)
	}
	// Idle connections above the per-host limit would be closed and
	// redialled; staying under it means every delivery reused one.
	if n := conns.Load(); n > 64 {
		t.Errorf("%d concurrent sends by %d workers opened %d connections", total, workers, n)
	}
	t.Logf("%d deliveries by %d workers in %v (%.0f/s), %d connections", total, workers, el, total/el.Seconds(), conns.Load())
}

func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	s := local(b, 0)
	body := []byte(`{"type":"order.paid","data":{"id":"ord_1"}}`)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h, err := webhook.Headers([]string{vectorSecret}, "evt_1", time.Now(), body)
			if err != nil {
				b.Error(err)
				return
			}
			if res := s.Send(context.Background(), srv.URL, h, body); !res.OK() {
				b.Errorf("Send = %+v", res)
				return
			}
		}
	})
}
