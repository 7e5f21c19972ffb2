package alipaysim_test

import (
	"bytes"
	"crypto"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/alipaysim"
)

func verifyReply(c *client, method string, body []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return err
	}
	var sign string
	_ = json.Unmarshal(raw["sign"], &sign)
	sig, err := base64.StdEncoding.DecodeString(sign)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw[strings.ReplaceAll(method, ".", "_")+"_response"])
	return rsa.VerifyPKCS1v15(c.alipayPub, crypto.SHA256, sum[:], sig)
}

// sn and rootSN recompute Alipay's certificate SNs the way smartwalle's
// alipay.go does (getCertSN, LoadAliPayRootCert), independently of the
// simulator's code.
func sn(t *testing.T, pemText string) string {
	t.Helper()
	block, _ := pem.Decode([]byte(pemText))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte(cert.Issuer.String() + cert.SerialNumber.String()))
	return hex.EncodeToString(sum[:])
}

func rootSN(t *testing.T, pemText string) string {
	t.Helper()
	const end = "-----END CERTIFICATE-----"
	var sns []string
	for _, part := range strings.Split(pemText, end) {
		part = strings.Replace(part, "-----BEGIN CERTIFICATE-----", "", 1)
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(part), ""))
		if err != nil || len(der) == 0 {
			continue
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			continue
		}
		if cert.SignatureAlgorithm == x509.SHA256WithRSA || cert.SignatureAlgorithm == x509.SHA1WithRSA {
			sum := md5.Sum([]byte(cert.Issuer.String() + cert.SerialNumber.String()))
			sns = append(sns, hex.EncodeToString(sum[:]))
		}
	}
	return strings.Join(sns, "_")
}

func TestCertMode(t *testing.T) {
	sim := startSim(t, func(o *alipaysim.Options) { o.CertMode = true })
	k := sim.Keys()
	if !k.CertMode || k.AppCertSN == "" || k.AlipayCertSN == "" || k.RootCertSN == "" {
		t.Fatalf("keys: %+v", k.LogValue())
	}
	if got := sn(t, k.AppCertPEM); got != k.AppCertSN {
		t.Errorf("app_cert_sn %s, recomputed %s", k.AppCertSN, got)
	}
	if got := sn(t, k.AlipayCertPEM); got != k.AlipayCertSN {
		t.Errorf("alipay_cert_sn %s, recomputed %s", k.AlipayCertSN, got)
	}
	if got := rootSN(t, k.RootCertPEM); got != k.RootCertSN || strings.Contains(got, "_") {
		t.Errorf("alipay_root_cert_sn %s, recomputed %s (the ECDSA root must not count)", k.RootCertSN, got)
	}
	if strings.Count(k.RootCertPEM, "BEGIN CERTIFICATE") != 2 {
		t.Errorf("root file should hold an RSA and an ECDSA root")
	}
	// The certificates carry the keys and chain to the root.
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(k.RootCertPEM))
	for name, p := range map[string]string{"alipay": k.AlipayCertPEM, "app": k.AppCertPEM} {
		block, _ := pem.Decode([]byte(p))
		cert, _ := x509.ParseCertificate(block.Bytes)
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s certificate does not chain to the root: %v", name, err)
		}
		want := k.AlipayPublicKey
		if name == "app" {
			want = k.AppPublicKey
		}
		if !cert.PublicKey.(*rsa.PublicKey).Equal(want) {
			t.Errorf("%s certificate carries another key", name)
		}
	}

	c := newClient(sim)
	r := c.call(t, alipaysim.MethodQuery, m{"out_trade_no": "CERT_1"})
	var certSN string
	_ = json.Unmarshal(r.raw["alipay_cert_sn"], &certSN)
	if r.sub() != "ACQ.TRADE_NOT_EXIST" || certSN != k.AlipayCertSN {
		t.Errorf("cert-mode reply: %v alipay_cert_sn=%q", r.fields, certSN)
	}
	noSN := newClient(sim)
	noSN.appSN = ""
	if r := noSN.call(t, alipaysim.MethodQuery, m{"out_trade_no": "CERT_1"}); r.str("code") != "40001" || r.sub() != "isv.missing-app-cert-sn" {
		t.Errorf("no app_cert_sn: %v", r.fields)
	}
	wrong := newClient(sim)
	wrong.appSN = strings.Repeat("0", 32)
	if r := wrong.call(t, alipaysim.MethodQuery, m{"out_trade_no": "CERT_1"}); r.sub() != alipaysim.SubAppCertSNNotMatch {
		t.Errorf("wrong app_cert_sn: %v", r.fields)
	}
	wrongRoot := newClient(sim)
	wrongRoot.rootSN = "abc"
	if r := wrongRoot.call(t, alipaysim.MethodQuery, m{"out_trade_no": "CERT_1"}); r.sub() != alipaysim.SubRootCertSNNotMatch {
		t.Errorf("wrong alipay_root_cert_sn: %v", r.fields)
	}
}

// TestDataDirKeepsKeysCertsAndState is the dev stack's restart: keys and
// certificates are written once and read back, and trades and refunds carry
// on.
func TestDataDirKeepsKeysCertsAndState(t *testing.T) {
	testKeys(t)
	dir := t.TempDir()
	withDir := func(o *alipaysim.Options) {
		o.DataDir, o.CertMode = dir, true
		o.AppKey, o.AlipayKey, o.RootKey = nil, nil, nil // generated and written
	}
	rc := newReceiver(t, nil)
	first := startSim(t, withDir)
	k1 := first.Keys()
	c := newClient(first)
	c.key = k1.AppPrivateKey
	c.notifyURL = rc.url()
	paid := createAndPay(t, c, "KEPT_1", "9.00")
	if r := c.call(t, alipaysim.MethodRefund, m{"out_trade_no": "KEPT_1", "refund_amount": "2", "out_request_no": "K1"}); r.str("fund_change") != "Y" {
		t.Fatalf("refund: %v", r.fields)
	}
	c.call(t, alipaysim.MethodCreate, m{"out_trade_no": "KEPT_OPEN", "total_amount": "3", "subject": "s", "buyer_id": "2088102146225135"})
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{alipaysim.FileAlipayPrivateKey, alipaysim.FileAlipayPublicKey, alipaysim.FileAppPrivateKey, alipaysim.FileAppPublicKey,
		alipaysim.FileRootCAKey, alipaysim.FileRootCert, alipaysim.FileAlipayCert, alipaysim.FileAppCert, alipaysim.FileState} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("data dir lacks %s: %v", f, err)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	// An outside tool reads the files as they are.
	b, _ := os.ReadFile(filepath.Join(dir, alipaysim.FileAppPrivateKey))
	if key, err := alipaysim.ParsePrivateKey(b); err != nil || !key.Equal(k1.AppPrivateKey) {
		t.Errorf("app_private_key.pem: %v", err)
	}
	b, _ = os.ReadFile(filepath.Join(dir, alipaysim.FileRootCert))
	if got := rootSN(t, string(b)); got != k1.RootCertSN {
		t.Errorf("alipayRootCert.crt SN %s, want %s", got, k1.RootCertSN)
	}

	second := startSim(t, withDir)
	k2 := second.Keys()
	if k2.AlipayPublicKeyPEM != k1.AlipayPublicKeyPEM || k2.AppPrivateKeyPEM != k1.AppPrivateKeyPEM ||
		k2.AppCertSN != k1.AppCertSN || k2.AlipayCertSN != k1.AlipayCertSN || k2.RootCertSN != k1.RootCertSN {
		t.Error("keys or certificates changed across the restart")
	}
	c2 := newClient(second)
	c2.key = k2.AppPrivateKey
	q := c2.call(t, alipaysim.MethodQuery, m{"trade_no": paid.TradeNo})
	if q.str("trade_status") != "TRADE_SUCCESS" || q.str("out_trade_no") != "KEPT_1" {
		t.Errorf("query after restart: %v", q.fields)
	}
	if r := c2.call(t, alipaysim.MethodRefund, m{"out_trade_no": "KEPT_1", "refund_amount": "2", "out_request_no": "K1"}); r.str("fund_change") != "N" || r.str("refund_fee") != "2.00" {
		t.Errorf("the same refund after restart: %v", r.fields)
	}
	if r := c2.call(t, alipaysim.MethodRefund, m{"out_trade_no": "KEPT_1", "refund_amount": "7.01", "out_request_no": "K2"}); r.sub() != "ACQ.REASON_TRADE_REFUND_FEE_ERR" {
		t.Errorf("over-refund after restart: %v", r.fields)
	}
	if _, err := second.PayTrade(ctxTimeout(t), "KEPT_OPEN", alipaysim.PayOptions{NoNotify: true}); err != nil {
		t.Errorf("pay a trade created before the restart: %v", err)
	}
	_ = second.Close()

	// Another app on the same folder is refused rather than mixed in.
	_, err := alipaysim.New(alipaysim.Options{AppID: "2021000000000002", DataDir: dir, CertMode: true})
	if err == nil {
		t.Error("a state file of another app was accepted")
	}
}

func TestControlHTTP(t *testing.T) {
	sim := startSim(t, nil)
	rc := newReceiver(t, nil)
	c := newClient(sim)
	c.notifyURL = rc.url()
	r := c.call(t, alipaysim.MethodCreate, m{"out_trade_no": "CTL_1", "total_amount": "50.00", "subject": "s", "buyer_open_id": "oid"})
	tradeNo := r.str("trade_no")
	post := func(path, body string) (*http.Response, []byte) {
		resp, err := http.Post(sim.URL()+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	// A genuine payment of the wrong amount.
	resp, b := post("/sim/trades/"+tradeNo+"/pay", `{"amount_fen":1}`)
	var ts alipaysim.TradeState
	if resp.StatusCode != 200 || json.Unmarshal(b, &ts) != nil || ts.Status != "TRADE_SUCCESS" || ts.TotalFen != 1 || ts.OrderedFen != 5000 {
		t.Fatalf("pay: %d %s", resp.StatusCode, b)
	}
	n := rc.wait(t, 1)[0].form
	if n.Get("total_amount") != "0.01" || n.Get("buyer_pay_amount") != "0.01" {
		t.Errorf("wrong-amount notification: %v", n)
	}
	if resp, _ := post("/sim/trades/CTL_1/pay", `{}`); resp.StatusCode != http.StatusConflict {
		t.Errorf("pay twice: %d", resp.StatusCode)
	}
	if resp, _ := post("/sim/trades/NOPE/pay", ``); resp.StatusCode != http.StatusNotFound {
		t.Errorf("pay unknown: %d", resp.StatusCode)
	}
	if resp, b := post("/sim/trades/CTL_1/finish", ``); resp.StatusCode != 200 || !bytes.Contains(b, []byte("TRADE_FINISHED")) {
		t.Errorf("finish: %d %s", resp.StatusCode, b)
	}
	if n := rc.wait(t, 2)[1].form; n.Get("trade_status") != "TRADE_FINISHED" || n.Get("gmt_close") == "" {
		t.Errorf("finished notification: %v", n)
	}
	if r := c.call(t, alipaysim.MethodRefund, m{"out_trade_no": "CTL_1", "refund_amount": "0.01", "out_request_no": "X"}); r.sub() != "ACQ.TRADE_HAS_FINISHED" {
		t.Errorf("refund finished: %v", r.fields)
	}

	get := func(path string, v any) {
		resp, err := http.Get(sim.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
	}
	var ns []alipaysim.Notification
	get("/sim/notifications?out_trade_no=CTL_1", &ns)
	if len(ns) != 2 || ns[0].Params["notify_id"] != ns[0].NotifyID || len(ns[0].Deliveries) == 0 {
		t.Errorf("notifications: %+v", ns)
	}
	resp, b = post("/sim/notifications/"+ns[0].NotifyID+"/resend", ``)
	var d alipaysim.Delivery
	if resp.StatusCode != 200 || json.Unmarshal(b, &d) != nil || !d.Manual || !d.Acked {
		t.Errorf("resend: %d %s", resp.StatusCode, b)
	}
	var trades []alipaysim.TradeState
	get("/sim/trades", &trades)
	if len(trades) != 1 || trades[0].TradeNo != tradeNo {
		t.Errorf("trades: %+v", trades)
	}
	var keys alipaysim.Keys
	get("/sim/keys", &keys)
	if keys.AppID != appID || !strings.Contains(keys.AlipayPublicKeyPEM, "PUBLIC KEY") {
		t.Errorf("keys: %+v", keys.LogValue())
	}

	// A forged notification signed with the real key, posted by the simulator.
	forged := `{"params":{"notify_id":"1","trade_status":"TRADE_SUCCESS","out_trade_no":"CTL_1","total_amount":"50.00","app_id":"` + appID + `"},"deliver_to":"` + rc.url() + `"}`
	resp, b = post("/sim/sign-notification", forged)
	var out struct {
		Params   map[string]string   `json:"params"`
		Delivery *alipaysim.Delivery `json:"delivery"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || out.Delivery == nil || !out.Delivery.Acked {
		t.Fatalf("sign-notification: %d %s", resp.StatusCode, b)
	}
	got := rc.wait(t, 4)
	if err := verifyValues(sim.Keys().AlipayPublicKey, got[len(got)-1].form); err != nil || got[len(got)-1].form.Get("total_amount") != "50.00" {
		t.Errorf("forged notification: %v %v", err, got[len(got)-1].form)
	}

	resp, _ = post("/sim/faults", `{"async_refunds":true,"fail_next":{"count":1,"status":503}}`)
	if resp.StatusCode != http.StatusNoContent || !sim.CurrentFaults().AsyncRefunds {
		t.Errorf("faults: %d", resp.StatusCode)
	}
	if resp, _ := http.PostForm(sim.GatewayURL(), c.params(alipaysim.MethodQuery, m{"out_trade_no": "CTL_1"})); resp.StatusCode != 503 {
		t.Errorf("fail_next via HTTP: %d", resp.StatusCode)
	}
	if resp, _ := post("/sim/faults", `{"nonsense":1}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown fault field: %d", resp.StatusCode)
	}
}

// TestSignedNotificationForging: tests forge hostile notifications with the
// real key through the Go API too.
func TestSignedNotificationForging(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(sim)
	createAndPay(t, c, "FORGE_1", "3.00")
	p, err := sim.NotificationParams("FORGE_1")
	if err != nil {
		t.Fatal(err)
	}
	p.Set("total_amount", "0.01")
	signed := sim.SignedNotification(p)
	if err := verifyValues(sim.Keys().AlipayPublicKey, signed); err != nil {
		t.Errorf("forged notification does not verify: %v", err)
	}
	signed.Set("total_amount", "3.00")
	if err := verifyValues(sim.Keys().AlipayPublicKey, signed); err == nil {
		t.Error("altered after signing, still verifies")
	}
	if _, err := sim.NotificationParams("NOPE"); !errors.Is(err, alipaysim.ErrTradeNotExist) {
		t.Errorf("unknown trade: %v", err)
	}
	sig, err := sim.Sign([]byte(`{"code":"10000"}`))
	if err != nil || sig == "" {
		t.Errorf("Sign: %q %v", sig, err)
	}
	_ = url.Values{}
}
