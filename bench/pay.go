package bench

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/runtime/awslambda"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/wxpay"
)

// childEnv makes the benchmark binary (test or scripts/bench) act as a
// helper process instead; see RunChild.
const childEnv = "PAYFN_BENCH_CHILD"

// simHello is what a simulator child prints once it listens.
type simHello struct {
	URL          string `json:"url"`
	PublicKeyID  string `json:"public_key_id"`
	PublicKeyPEM string `json:"public_key_pem"`
}

// RunChild runs the helper process the environment asks for and reports
// whether it did; a main or TestMain calls it first and returns if true.
// The "paysim" child serves the WeChat Pay simulator on loopback until its
// stdin closes, so that the simulator's CPU (it signs every reply) is not
// counted in the parent's.
func RunChild() bool {
	if os.Getenv(childEnv) != "paysim" {
		return false
	}
	if err := runSimChild(); err != nil {
		fmt.Fprintln(os.Stderr, "paysim child:", err)
		os.Exit(1)
	}
	return true
}

func runSimChild() error {
	blk, _ := pem.Decode([]byte(os.Getenv("PAYFN_BENCH_MERCHANT_PUB")))
	if blk == nil {
		return errors.New("no merchant public key")
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return err
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return errors.New("merchant public key is not RSA")
	}
	sim, err := paysim.New(paysim.Options{
		MchID: MchID, AppID: AppID, AppSecret: AppSecret, APIv3Key: APIv3Key,
		MerchantSerial: MchSerial, MerchantPublicKey: rsaPub,
	})
	if err != nil {
		return err
	}
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		return err
	}
	defer sim.Close()
	k := sim.Keys()
	if err := json.NewEncoder(os.Stdout).Encode(simHello{URL: sim.URL(), PublicKeyID: k.PublicKeyID, PublicKeyPEM: k.PublicKeyPEM}); err != nil {
		return err
	}
	io.Copy(io.Discard, os.Stdin) // until the parent goes
	return nil
}

// simChild is a running simulator child.
type simChild struct {
	cmd   *exec.Cmd
	stdin io.Closer
	URL   string
	Keys  paysim.Keys
}

func startSimChild(f *Fixture) (*simChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&f.MerchantKey.PublicKey)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), childEnv+"=paysim",
		"PAYFN_BENCH_MERCHANT_PUB="+string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &simChild{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("paysim child: %w", err)
	}
	var hello simHello
	if err := json.Unmarshal(line, &hello); err != nil {
		c.Close()
		return nil, fmt.Errorf("paysim child said %q: %w", line, err)
	}
	pub, err := wxpay.LoadPublicKey(hello.PublicKeyPEM)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.URL = hello.URL
	c.Keys = paysim.Keys{MchID: MchID, AppID: AppID, PublicKeyID: hello.PublicKeyID, PublicKeyPEM: hello.PublicKeyPEM, PublicKey: pub}
	return c, nil
}

func (c *simChild) Close() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// BenchPay is the whole pay function per call (event conversion, session
// check, order load, JSAPI prepay through wechatpay-go: request signature,
// HTTP round trip on loopback, response signature check; prepay id saved,
// paySign) with the store in memory and the simulator in a child process:
// cpu-ns/op is this process's CPU only. Each call prepays afresh: the pool's
// orders are reset to have no prepay id (a map write, counted).
func BenchPay(b *testing.B) {
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	op, closeFn, err := PayOp(f)
	if err != nil {
		b.Fatal(err)
	}
	defer closeFn()
	runOps(b, op)
}

// PayOp returns the operation of BenchPay, and what stops its simulator.
func PayOp(f *Fixture) (op func(i int) error, closeFn func(), err error) {
	sim, err := startSimChild(f)
	if err != nil {
		return nil, nil, err
	}
	ch, err := f.Channel(sim.URL, sim.Keys)
	if err != nil {
		sim.Close()
		return nil, nil, err
	}
	closeFn = func() { ch.Close(); sim.Close() }
	tokens, err := identity.NewTokens([]byte(strings.Repeat("s", 32)), time.Hour, nil)
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	st := newMemStore()
	log := discardLogger()
	a := app.New(app.Config{Store: st, Channel: ch, Sessions: tokens, Logger: log})
	h := awslambda.NewHandler(httpapi.New(a, log).Pay(), log)

	orders, err := f.Orders(poolSize)
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	evs := make([]events.APIGatewayV2HTTPRequest, len(orders))
	for i, o := range orders {
		tok, _, err := tokens.Issue(o.Owner)
		if err != nil {
			closeFn()
			return nil, nil, err
		}
		e := events.APIGatewayV2HTTPRequest{
			Version: "2.0", RawPath: httpapi.PathPay,
			Headers: map[string]string{"content-type": "application/json", "authorization": "Bearer " + tok, "host": "payfn.example"},
			Body:    fmt.Sprintf(`{"order_id":%q}`, o.ID),
		}
		e.RequestContext.HTTP.Method = http.MethodPost
		e.RequestContext.HTTP.Protocol = "HTTP/1.1"
		e.RequestContext.RequestID = "bench-request"
		evs[i] = e
	}
	ctx := context.Background()
	op = func(i int) error {
		k := i % len(orders)
		st.put(orders[k], "")
		resp, err := h(ctx, evs[k])
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Body, `"paySign"`) {
			return fmt.Errorf("pay answered %d %s", resp.StatusCode, resp.Body)
		}
		return nil
	}
	if err := op(0); err != nil { // warm the connection
		closeFn()
		return nil, nil, err
	}
	return op, closeFn, nil
}

// BenchPayFloor is the cryptography pay cannot avoid per call: sign the
// prepay request (SHA256withRSA, merchant key), verify the signed response
// (RSA-2048 verify), and sign the paySign for wx.requestPayment; the
// messages are the size of the real ones.
func BenchPayFloor(b *testing.B) {
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	op, err := PayFloorOp(f)
	if err != nil {
		b.Fatal(err)
	}
	runOps(b, op)
}

// PayFloorOp returns the operation of BenchPayFloor.
func PayFloorOp(f *Fixture) (func(i int) error, error) {
	platform, err := wxpay.LoadPrivateKey(f.Keys.PlatformPrivateKeyPEM)
	if err != nil {
		return nil, err
	}
	reqMsg := "POST\n/v3/pay/transactions/jsapi\n1795000000\n" + strings.Repeat("N", 32) + "\n" +
		`{"amount":{"currency":"CNY","total":2800},"appid":"wx1234567890abcdef","description":"Latte","mchid":"1900000109","notify_url":"https://payfn.example/notify/wechatpay","out_trade_no":"` + strings.Repeat("0", 32) + `","payer":{"openid":"o-buyer-000001"},"time_expire":"2026-11-23T17:00:00+08:00"}` + "\n\n"
	respMsg := "1795000000\n" + strings.Repeat("n", 32) + "\n" + `{"prepay_id":"wx` + strings.Repeat("1", 34) + `"}` + "\n"
	sum := sha256.Sum256([]byte(respMsg))
	respSig, err := rsa.SignPKCS1v15(rand.Reader, platform, crypto.SHA256, sum[:])
	if err != nil {
		return nil, err
	}
	respSigB64 := base64.StdEncoding.EncodeToString(respSig)
	payMsg := AppID + "\n1795000000\n" + strings.Repeat("N", 32) + "\nprepay_id=wx" + strings.Repeat("1", 34) + "\n"
	key := f.MerchantKey
	pub := &platform.PublicKey
	return func(int) error {
		s1 := sha256.Sum256([]byte(reqMsg))
		if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, s1[:]); err != nil {
			return err
		}
		sig, _ := base64.StdEncoding.DecodeString(respSigB64)
		s2 := sha256.Sum256([]byte(respMsg))
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, s2[:], sig); err != nil {
			return err
		}
		s3 := sha256.Sum256([]byte(payMsg))
		_, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, s3[:])
		return err
	}, nil
}

// BenchRSASign is one SHA256withRSA signature with the merchant's RSA-2048
// key: two of these are most of pay's floor.
func BenchRSASign(b *testing.B) {
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256([]byte("wx1234567890abcdef\n1795000000\nnonce\nprepay_id=wx1\n"))
	b.ResetTimer()
	start := int64(cpuTime())
	for i := 0; i < b.N; i++ {
		if _, err := rsa.SignPKCS1v15(rand.Reader, f.MerchantKey, crypto.SHA256, sum[:]); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}
