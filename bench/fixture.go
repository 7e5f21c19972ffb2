// Package bench measures payfn: the CPU of verifyPayment and pay against
// the floor of their cryptography, the function binaries' size and cold
// start, a Node.js peer (wechatpay-node-v3) on the same notifications, and
// purchases end to end through the local stack. The Go benchmarks in
// bench_test.go and the table printed by scripts/bench run the same code.
//
// It is a tool, never linked into a function: it may import paysim and the
// embedded store.
package bench

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/store/embedded"
	"github.com/payfn/payfn/shared/wxpay"
)

// The merchant the benchmarks play.
const (
	AppID     = "wx1234567890abcdef"
	MchID     = "1900000109"
	APIv3Key  = "0123456789abcdef0123456789abcdef"
	MchSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
	AppSecret = "app-secret"
	// NotifyURL is where notifications would go; the benchmarks call the
	// handler directly.
	NotifyURL = "https://payfn.example/v1/wxpay/notify"
	priceFen  = 2800
)

// Fixture holds the keys and the simulator every benchmark shares.
type Fixture struct {
	MerchantKey *rsa.PrivateKey
	MerchantPEM string // PKCS#8
	Sim         *paysim.Server
	Keys        paysim.Keys
}

var (
	reqSeq  atomic.Int64
	fixOnce sync.Once
	fix     *Fixture
	fixErr  error
)

// Shared returns the process's fixture, making the RSA keys on first use.
func Shared() (*Fixture, error) {
	fixOnce.Do(func() { fix, fixErr = newFixture() })
	return fix, fixErr
}

func newFixture() (*Fixture, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	sim, err := paysim.New(paysim.Options{
		MchID: MchID, AppID: AppID, AppSecret: AppSecret, APIv3Key: APIv3Key,
		MerchantSerial: MchSerial, MerchantPublicKey: &key.PublicKey,
	})
	if err != nil {
		return nil, err
	}
	return &Fixture{
		MerchantKey: key,
		MerchantPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		Sim:         sim,
		Keys:        sim.Keys(),
	}, nil
}

// Channel is the production WeChat Pay channel, in public-key mode, talking
// to baseURL (a simulator; "" for none).
func (f *Fixture) Channel(baseURL string, keys paysim.Keys) (*wxpay.Channel, error) {
	return wxpay.New(wxpay.Config{
		MchID: MchID, AppID: AppID, MchCertSerial: MchSerial, MchPrivateKey: f.MerchantKey,
		APIv3Key: APIv3Key, NotifyURL: NotifyURL, BaseURL: baseURL, Timeout: 10 * time.Second,
		PublicKeyID: keys.PublicKeyID, PublicKey: keys.PublicKey,
	})
}

// Notice is one genuine payment notification and the order it pays.
type Notice struct {
	Order  order.Order
	TxID   string
	Header http.Header
	Body   []byte
}

// Orders makes n NOTPAY orders of one latte, each for its own buyer.
func (f *Fixture) Orders(n int) ([]order.Order, error) {
	now := time.Now()
	p := order.Product{ID: "latte", Title: "Latte", PriceFen: priceFen, Active: true}
	out := make([]order.Order, n)
	for i := range out {
		o, err := order.NewOrder(app.NewOrderID(), fmt.Sprintf("o-buyer-%06d", i), fmt.Sprintf("req-%d", reqSeq.Add(1)), p, 1, now, 30*time.Minute)
		if err != nil {
			return nil, err
		}
		out[i] = o
	}
	return out, nil
}

// Notices builds n orders and a genuine, signed and encrypted notification
// paying each, as WeChat Pay (the simulator) would send it.
func (f *Fixture) Notices(n int) ([]Notice, error) {
	now := time.Now()
	orders, err := f.Orders(n)
	if err != nil {
		return nil, err
	}
	out := make([]Notice, n)
	for i, o := range orders {
		tx := fmt.Sprintf("4200%s%016d", now.Format("20060102"), i)
		h, body, err := f.Sim.BuildNotification(paysim.Transaction{
			AppID: AppID, MchID: MchID, OutTradeNo: o.ID, TransactionID: tx,
			TradeType: "JSAPI", TradeState: "SUCCESS", TradeStateDesc: "支付成功", BankType: "OTHERS",
			SuccessTime: now.Format(time.RFC3339),
			Payer:       &paysim.Payer{OpenID: o.Owner},
			Amount:      &paysim.Amount{Total: o.TotalFen, PayerTotal: o.TotalFen, Currency: "CNY", PayerCurrency: "CNY"},
		}, paysim.NotifyOptions{})
		if err != nil {
			return nil, err
		}
		out[i] = Notice{Order: o, TxID: tx, Header: h, Body: body}
	}
	return out, nil
}

// discardLogger formats every record, as a function's stdout logger does,
// and throws the bytes away.
func discardLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

// cpuTime is the CPU (user+system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var (
	dbOnce sync.Once
	dbSrv  *embedded.Server
	dbErr  error
	dbSeq  int
	dbMu   sync.Mutex
)

// EmbeddedURI starts (once per process) the embedded FerretDB the local
// stack uses and returns its URI and a database name no one else uses.
func EmbeddedURI() (uri, db string, err error) {
	dbOnce.Do(func() {
		dir, err := os.MkdirTemp("", "payfn-bench-db-")
		if err != nil {
			dbErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		dbSrv, dbErr = embedded.Start(ctx, embedded.Options{Dir: filepath.Join(dir, "data")})
	})
	if dbErr != nil {
		return "", "", dbErr
	}
	dbMu.Lock()
	defer dbMu.Unlock()
	dbSeq++
	return dbSrv.URI(), fmt.Sprintf("bench_%d_%d", os.Getpid(), dbSeq), nil
}
