package alipay_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"sort"
	"strings"
	"testing"
)

// benchBody is a genuine signed notification of a paid trade, as the
// simulator sends it.
func benchBody(b *testing.B) (*rig, []byte) {
	r := newRig(b, false, nil)
	form := r.sim.SignedNotification(r.genuine(b, 1234))
	return r, []byte(form.Encode())
}

// BenchmarkNotification is ParseNotification of a genuine notification:
// parse, verify, translate.
func BenchmarkNotification(b *testing.B) {
	r, body := benchBody(b)
	ch := r.client.Mini()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ch.ParseNotification(ctx, nil, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNotificationFloor is what no implementation can avoid: parsing
// the form and one RSA2 (SHA256withRSA) verification, with the signed
// string and the signature prepared outside the loop.
func BenchmarkNotificationFloor(b *testing.B) {
	r, body := benchBody(b)
	form, _ := url.ParseQuery(string(body))
	keys := []string{}
	for k := range form {
		if k != "sign" && k != "sign_type" && form.Get(k) != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = k + "=" + form.Get(k)
	}
	content := []byte(strings.Join(pairs, "&"))
	sig, _ := base64.StdEncoding.DecodeString(form.Get("sign"))
	pub := r.sim.Keys().AlipayPublicKey
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := url.ParseQuery(string(body)); err != nil {
			b.Fatal(err)
		}
		sum := sha256.Sum256(content)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}
