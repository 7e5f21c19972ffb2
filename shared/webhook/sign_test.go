package webhook_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/webhook"
)

// The published Standard Webhooks test vector: TestWebhookSign in
// github.com/standard-webhooks/standard-webhooks libraries/go/webhook_test.go
// (the same values appear in the Svix libraries' sign tests). Reproducing it
// is what proves interoperability; a round trip through our own verifier
// would pass with a wrong delimiter or key decoding too.
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS     = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignVector(t *testing.T) {
	for _, secret := range []string{vectorSecret, strings.TrimPrefix(vectorSecret, "whsec_")} {
		got, err := webhook.Sign(secret, vectorID, time.Unix(vectorTS, 0), []byte(vectorBody))
		if err != nil {
			t.Fatalf("Sign(%q): %v", secret, err)
		}
		if got != vectorSig {
			t.Errorf("Sign(%q) = %s, want %s", secret, got, vectorSig)
		}
	}
}

func TestVerifyVector(t *testing.T) {
	h := http.Header{}
	h.Set("webhook-id", vectorID)
	h.Set("webhook-timestamp", strconv.Itoa(vectorTS))
	// Another version and a bad v1 first: only a matching v1 counts.
	h.Set("webhook-signature", "v1a,bm9wZQ== v1,bm9wZQ== "+vectorSig)
	now := time.Unix(vectorTS+30, 0)
	if err := webhook.VerifyAt(vectorSecret, h, []byte(vectorBody), now, 0); err != nil {
		t.Fatalf("VerifyAt: %v", err)
	}
}

func TestHeadersRotation(t *testing.T) {
	newSecret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now()
	body := []byte(`{"type":"order.paid"}`)
	h, err := webhook.Headers([]string{newSecret, vectorSecret}, "evt_1", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Get("webhook-id"); got != "evt_1" {
		t.Errorf("webhook-id = %q", got)
	}
	if got := h.Get("webhook-timestamp"); got != strconv.FormatInt(ts.Unix(), 10) {
		t.Errorf("webhook-timestamp = %q", got)
	}
	sigs := strings.Split(h.Get("webhook-signature"), " ")
	if len(sigs) != 2 || sigs[0] == sigs[1] {
		t.Fatalf("webhook-signature = %q, want two different v1 signatures", h.Get("webhook-signature"))
	}
	for _, s := range []string{newSecret, vectorSecret} {
		if err := webhook.Verify(s, h, body); err != nil {
			t.Errorf("Verify with one of the two secrets: %v", err)
		}
	}
	other, _ := webhook.NewSecret()
	if err := webhook.Verify(other, h, body); !errors.Is(err, webhook.ErrNoMatchingSignature) {
		t.Errorf("Verify with a third secret = %v, want ErrNoMatchingSignature", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"evt_1","amount":100}`)
	signed := func(ts time.Time) http.Header {
		h, err := webhook.Headers([]string{vectorSecret}, "evt_1", ts, body)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	other, _ := webhook.NewSecret()
	cases := []struct {
		name   string
		secret string
		header http.Header
		body   []byte
		want   error
	}{
		{"tampered body", vectorSecret, signed(now), []byte(`{"id":"evt_1","amount":999}`), webhook.ErrNoMatchingSignature},
		{"tampered id", vectorSecret, with(signed(now), "webhook-id", "evt_2"), body, webhook.ErrNoMatchingSignature},
		{"tampered timestamp", vectorSecret, with(signed(now), "webhook-timestamp", strconv.FormatInt(now.Unix()+1, 10)), body, webhook.ErrNoMatchingSignature},
		{"leading zero timestamp", vectorSecret, with(signed(now), "webhook-timestamp", "0"+strconv.FormatInt(now.Unix(), 10)), body, webhook.ErrNoMatchingSignature},
		{"wrong secret", other, signed(now), body, webhook.ErrNoMatchingSignature},
		{"only other versions", vectorSecret, with(signed(now), "webhook-signature", "v1a,"+strings.TrimPrefix(signed(now).Get("webhook-signature"), "v1,")), body, webhook.ErrNoMatchingSignature},
		{"stale", vectorSecret, signed(now.Add(-5*time.Minute - time.Second)), body, webhook.ErrTooOld},
		{"future", vectorSecret, signed(now.Add(5*time.Minute + time.Second)), body, webhook.ErrTooNew},
		{"missing id", vectorSecret, with(signed(now), "webhook-id", ""), body, webhook.ErrMissingHeaders},
		{"missing timestamp", vectorSecret, with(signed(now), "webhook-timestamp", ""), body, webhook.ErrMissingHeaders},
		{"missing signature", vectorSecret, with(signed(now), "webhook-signature", ""), body, webhook.ErrMissingHeaders},
		{"signed timestamp", vectorSecret, with(signed(now), "webhook-timestamp", "+1800000000"), body, webhook.ErrBadTimestamp},
		{"float timestamp", vectorSecret, with(signed(now), "webhook-timestamp", "1800000000.5"), body, webhook.ErrBadTimestamp},
		{"huge timestamp", vectorSecret, with(signed(now), "webhook-timestamp", "99999999999999999999"), body, webhook.ErrBadTimestamp},
		{"bad secret", "whsec_notbase64!", signed(now), body, webhook.ErrInvalidSecret},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := webhook.VerifyAt(c.secret, c.header, c.body, now, 0)
			if !errors.Is(err, c.want) {
				t.Fatalf("VerifyAt = %v, want %v", err, c.want)
			}
		})
	}

	// The edges of the window are inside it.
	for _, d := range []time.Duration{-5 * time.Minute, 5 * time.Minute} {
		if err := webhook.VerifyAt(vectorSecret, signed(now.Add(d)), body, now, 0); err != nil {
			t.Errorf("timestamp at now%+v: %v", d, err)
		}
	}
	// A caller's own tolerance applies.
	if err := webhook.VerifyAt(vectorSecret, signed(now.Add(-time.Minute)), body, now, 30*time.Second); !errors.Is(err, webhook.ErrTooOld) {
		t.Errorf("1 min old with 30 s tolerance = %v, want ErrTooOld", err)
	}
}

func with(h http.Header, key, value string) http.Header {
	if value == "" {
		h.Del(key)
	} else {
		h.Set(key, value)
	}
	return h
}

func TestParseSecret(t *testing.T) {
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "whsec_") {
		t.Fatalf("NewSecret() = %q…, want the whsec_ prefix", s[:6])
	}
	key, err := webhook.ParseSecret(s)
	if err != nil || len(key) != 32 {
		t.Fatalf("ParseSecret(NewSecret()) = %d bytes, %v; want 32, nil", len(key), err)
	}
	if s2, _ := webhook.NewSecret(); s2 == s {
		t.Error("two NewSecret calls returned the same secret")
	}
	bad := []string{
		"",
		"whsec_",
		"whsec_!!!!",
		"whsec_c2hvcnQ=",                   // 5 bytes: too short
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",  // not a multiple of 4
		"whsec_" + strings.Repeat("A", 88), // 66 bytes: too long
		"whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	}
	for _, b := range bad {
		_, err := webhook.ParseSecret(b)
		if !errors.Is(err, webhook.ErrInvalidSecret) {
			t.Errorf("ParseSecret(%q) = %v, want ErrInvalidSecret", b, err)
			continue
		}
		if len(b) > 10 && strings.Contains(err.Error(), strings.TrimPrefix(b, "whsec_")) {
			t.Errorf("ParseSecret error repeats the secret: %v", err)
		}
	}
}

func TestHeadersRejects(t *testing.T) {
	body := []byte(`{}`)
	now := time.Now()
	if _, err := webhook.Headers(nil, "evt_1", now, body); err == nil {
		t.Error("no secrets: want an error")
	}
	for _, id := range []string{"", "evt.1", "evt 1", "evt\n1", "évt"} {
		if _, err := webhook.Headers([]string{vectorSecret}, id, now, body); err == nil {
			t.Errorf("id %q: want an error", id)
		}
	}
	if _, err := webhook.Headers([]string{vectorSecret}, "evt_1", time.Unix(-1, 0), body); err == nil {
		t.Error("timestamp before 1970: want an error")
	}
	if _, err := webhook.Headers([]string{vectorSecret, "nope"}, "evt_1", now, body); !errors.Is(err, webhook.ErrInvalidSecret) {
		t.Errorf("bad second secret = %v, want ErrInvalidSecret", err)
	}
}

// FuzzVerify checks that no input makes VerifyAt panic, and that it only
// accepts what a real signer produced.
func FuzzVerify(f *testing.F) {
	f.Add(vectorSecret, vectorID, strconv.Itoa(vectorTS), vectorSig, []byte(vectorBody))
	f.Add(vectorSecret, vectorID, strconv.Itoa(vectorTS), "v1, v1,,, ,v1 v2,x "+vectorSig, []byte(vectorBody))
	f.Add("whsec_", "", "", "", []byte(nil))
	f.Add(vectorSecret, "a.b", "-1", "v1,====", []byte("x"))
	f.Add(vectorSecret, vectorID, "99999999999999999999", vectorSig, []byte(vectorBody))
	now := time.Unix(vectorTS, 0)
	f.Fuzz(func(t *testing.T, secret, id, ts, sigs string, body []byte) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sigs)
		err := webhook.VerifyAt(secret, h, body, now, 0)
		if err != nil {
			return
		}
		n, perr := strconv.ParseInt(ts, 10, 64)
		if perr != nil || n < now.Unix()-300 || n > now.Unix()+300 {
			t.Fatalf("accepted timestamp %q outside the window", ts)
		}
		want, serr := webhook.Sign(secret, id, time.Unix(n, 0), body)
		if serr != nil {
			t.Fatalf("accepted under a secret Sign rejects: %v", serr)
		}
		if !containsField(sigs, want) {
			t.Fatalf("accepted %q, which does not contain %q", sigs, want)
		}
	})
}

func containsField(list, want string) bool {
	for _, f := range strings.Fields(list) {
		if f == want {
			return true
		}
	}
	return false
}
