package wxpay_test

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/paysim"
)

// fuzzTx is the transaction the seed notifications carry.
var fuzzTx = paysim.Transaction{
	AppID: appID, MchID: mchID, OutTradeNo: "PF20260101000000FUZZ00000001", TransactionID: "4200000000202601011234567890",
	TradeType: "JSAPI", TradeState: "SUCCESS", SuccessTime: "2026-01-01T10:00:00+08:00",
	Payer: &paysim.Payer{OpenID: openID}, Amount: &paysim.Amount{Total: 2800, PayerTotal: 2800, Currency: "CNY", PayerCurrency: "CNY"},
}

// FuzzParseNotification feeds ParseNotification arbitrary signature headers
// and bodies, with the timestamp near now so the fuzzer gets past the
// freshness check. Only the seed's exact signed bytes are genuine: every
// other input must fail with ErrBadNotification, and none may panic.
func FuzzParseNotification(f *testing.F) {
	sim := startSim(f, nil)
	ch := newChannel(f, config(sim, "https://merchant.example.com/notify"))
	h, genuineBody, err := sim.BuildNotification(fuzzTx, paysim.NotifyOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(h.Get("Wechatpay-Serial"), h.Get("Wechatpay-Signature"), int64(0), h.Get("Wechatpay-Nonce"), "", genuineBody)
	f.Add(sim.Keys().PublicKeyID, "WECHATPAY/SIGNTEST/AAAA", int64(-299), "n", "WECHATPAY2-SHA256-RSA2048", []byte(`{"resource":{"nonce":"abcdefghijk"}}`))
	f.Fuzz(func(t *testing.T, serial, sig string, shift int64, nonce, sigType string, body []byte) {
		hdr := http.Header{}
		hdr.Set("Wechatpay-Serial", serial)
		hdr.Set("Wechatpay-Signature", sig)
		hdr.Set("Wechatpay-Timestamp", strconv.FormatInt(time.Now().Unix()+shift%400, 10))
		hdr.Set("Wechatpay-Nonce", nonce)
		if sigType != "" {
			hdr.Set("Wechatpay-Signature-Type", sigType)
		}
		n, err := ch.ParseNotification(context.Background(), hdr, body)
		genuine := sig == h.Get("Wechatpay-Signature") && nonce == h.Get("Wechatpay-Nonce") && string(body) == string(genuineBody)
		if err == nil && !genuine {
			t.Fatalf("a notification WeChat Pay never signed was accepted: %+v", n)
		}
		if genuine {
			return // accepted, or refused because a second has passed: both right
		}
		if !errors.Is(err, app.ErrBadNotification) {
			t.Fatalf("err = %v, want ErrBadNotification", err)
		}
	})
}

// FuzzParseSignedNotification signs whatever body the fuzzer makes with the
// platform key, as WeChat Pay would, so every check behind the signature
// (envelope, nonce, algorithm, decryption, plaintext) is exercised. No input
// may panic; an accepted one must really decrypt, under our APIv3 key, to
// the transaction returned; a refused one wraps ErrBadNotification.
func FuzzParseSignedNotification(f *testing.F) {
	sim := startSim(f, nil)
	ch := newChannel(f, config(sim, "https://merchant.example.com/notify"))
	for _, o := range []paysim.NotifyOptions{{}, {Nonce: "abcdefghijk"}, {OmitResource: true}, {APIv3Key: "ffffffffffffffffffffffffffffffff"}} {
		_, body, err := sim.BuildNotification(fuzzTx, o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add("", body)
	}
	f.Add("WECHATPAY2-SM2-WITH-SM3", []byte(`{}`))
	f.Add("", []byte(`{"resource":{"algorithm":"AEAD_AES_256_GCM","nonce":"abcdefghijkl","ciphertext":"","associated_data":""}}`))
	serial := sim.Keys().PublicKeyID
	capMinimization(f)
	f.Fuzz(func(t *testing.T, sigType string, body []byte) {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		nonce := "fuzznonce"
		sum := sha256.Sum256([]byte(ts + "\n" + nonce + "\n" + string(body) + "\n"))
		sig, err := rsa.SignPKCS1v15(rand.Reader, platformKey, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		hdr := http.Header{}
		hdr.Set("Wechatpay-Serial", serial)
		hdr.Set("Wechatpay-Signature", base64.StdEncoding.EncodeToString(sig))
		hdr.Set("Wechatpay-Timestamp", ts)
		hdr.Set("Wechatpay-Nonce", nonce)
		if sigType != "" {
			hdr.Set("Wechatpay-Signature-Type", sigType)
		}
		n, err := ch.ParseNotification(context.Background(), hdr, body)
		if err != nil {
			if !errors.Is(err, app.ErrBadNotification) {
				t.Fatalf("err = %v, want ErrBadNotification", err)
			}
			return
		}
		// Accepted: check independently that it is what it claims.
		var env struct {
			ID       string `json:"id"`
			Resource struct {
				Nonce          string `json:"nonce"`
				Ciphertext     string `json:"ciphertext"`
				AssociatedData string `json:"associated_data"`
			} `json:"resource"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("accepted a body that is not JSON: %q", body)
		}
		ct, err := base64.StdEncoding.DecodeString(env.Resource.Ciphertext)
		if err != nil || len(env.Resource.Nonce) != 12 {
			t.Fatalf("accepted a resource that cannot be decrypted: %q", body)
		}
		block, _ := aes.NewCipher([]byte(apiV3Key))
		gcm, _ := cipher.NewGCM(block)
		plain, err := gcm.Open(nil, []byte(env.Resource.Nonce), ct, []byte(env.Resource.AssociatedData))
		if err != nil {
			t.Fatalf("accepted a resource that does not decrypt under our key: %q", body)
		}
		var tx struct {
			OutTradeNo    string `json:"out_trade_no"`
			TransactionID string `json:"transaction_id"`
		}
		if err := json.Unmarshal(plain, &tx); err != nil || tx.OutTradeNo != n.Transaction.OutTradeNo || tx.TransactionID != n.Transaction.TransactionID || env.ID != n.ID {
			t.Fatalf("returned %+v, but the resource says %s", n, plain)
		}
	})
}

// capMinimization caps how long the fuzzer minimises each new input, unless
// -fuzzminimizetime was given. RSA signing blinds with fresh randomness, so
// coverage varies from run to run and inputs keep looking new; minimising
// each for the default 60 s stalls fuzzing at 0 execs/s.
func capMinimization(f *testing.F) {
	set := false
	flag.Visit(func(fl *flag.Flag) { set = set || fl.Name == "test.fuzzminimizetime" })
	if !set {
		if err := flag.Set("test.fuzzminimizetime", "10x"); err != nil {
			f.Fatal(err)
		}
	}
}
