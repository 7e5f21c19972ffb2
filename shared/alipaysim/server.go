package alipaysim

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/payfn/payfn/shared/internal/simkit"
)

// cst is China Standard Time (Asia/Shanghai, no daylight saving): Alipay
// stamps and reads every time in it. A fixed zone avoids depending on tzdata.
var cst = time.FixedZone("CST", 8*3600)

const timeLayout = "2006-01-02 15:04:05"

// defaultRetrySchedule is Alipay's wait before each notification retry
// after a failed delivery: 7 retries, 8 tries within about 25 hours.
var defaultRetrySchedule = []time.Duration{
	4 * time.Minute, 10 * time.Minute, 10 * time.Minute, time.Hour,
	2 * time.Hour, 6 * time.Hour, 15 * time.Hour,
}

// DefaultRetrySchedule returns a copy of Alipay's notification retry
// schedule (4m, 10m, 10m, 1h, 2h, 6h, 15h).
func DefaultRetrySchedule() []time.Duration {
	return append([]time.Duration(nil), defaultRetrySchedule...)
}

// Options configure a Server. Only AppID is required.
type Options struct {
	AppID    string
	SellerID string // the merchant's Alipay user id (seller_id); default "2088" + 12 digits
	// MerchantName is shown on the cashier page (default "alipaysim merchant").
	MerchantName string

	// CertMode makes the simulator an app in 公钥证书 (public key
	// certificate) mode: requests must carry app_cert_sn and
	// alipay_root_cert_sn matching the certificates in Keys, and replies
	// carry alipay_cert_sn. Otherwise it is in 公钥 (public key) mode and
	// refuses requests that carry either SN.
	CertMode bool

	// AppPublicKey verifies the merchant's request signatures. When nil,
	// AppKey is used; when both are nil a merchant key pair is generated
	// (or read from DataDir) and Keys hands out its private half.
	AppPublicKey *rsa.PublicKey
	AppKey       *rsa.PrivateKey
	// AlipayKey signs replies, return parameters and notifications;
	// generated (or read from DataDir) when nil.
	AlipayKey *rsa.PrivateKey
	// RootKey is the CA key that issues the certificates in CertMode;
	// generated (or read from DataDir) when nil.
	RootKey *rsa.PrivateKey

	// DataDir, when set, holds the keys and certificates (see the File*
	// constants; written on first start, read back afterwards) and, unless
	// StatePath says otherwise, the state file alipaysim-state.json.
	DataDir string
	// StatePath, when set, is a JSON file that keeps trades and refunds
	// across restarts: New loads it, every change is written soon after (a
	// temporary file renamed over it) and Close writes the last.
	StatePath string

	// RetrySchedule is the wait before each notification retry; nil means
	// Alipay's. RetryScale, when positive, multiplies every wait (1.0/3600
	// turns the 25-hour schedule into 25 seconds). Waits use real timers.
	RetrySchedule []time.Duration
	RetryScale    float64
	// DeliveryTimeout bounds one notification delivery (default 5s).
	DeliveryTimeout time.Duration
	// HTTPClient delivers notifications (default: a client of its own with
	// DeliveryTimeout that does not follow redirects).
	HTTPClient *http.Client
	// LegacyNotifyContentType sends notifications with the header
	// "Content-Type: application/x-www-form-urlencoded; text/html;
	// charset=UTF-8" that real Alipay notifications have carried, on which
	// Go's ParseForm reports "mime: invalid media parameter". Default
	// "application/x-www-form-urlencoded; charset=utf-8".
	LegacyNotifyContentType bool

	// TimestampWindow, when positive, refuses requests whose timestamp
	// (read as Asia/Shanghai time) is further than this from Now
	// (isv.invalid-timestamp). Zero checks the format only.
	TimestampWindow time.Duration

	// Now stamps replies, notifications and expiry checks.
	Now    func() time.Time
	Logger *slog.Logger // default discards
}

// Server is the simulator. It is safe for concurrent use.
type Server struct {
	billOnce sync.Once // bill.go's state, made on first use
	billSt   *billState

	appID, sellerID, merchantName string
	certMode                      bool
	keys                          *keyring
	schedule                      []time.Duration
	deliveryTimeout               time.Duration
	legacyContentType             bool
	timestampWindow               time.Duration
	hc                            *http.Client
	transport                     *http.Transport
	now                           func() time.Time
	log                           *slog.Logger
	mux                           *http.ServeMux

	// run owns the listener and the background goroutines; its Context
	// ends pending deliveries and settlements on Close.
	run *simkit.Server

	mu            sync.Mutex
	trades        map[string]*TradeState  // by out_trade_no
	byTradeNo     map[string]string       // trade_no → out_trade_no
	refunds       map[string]*RefundState // by out_trade_no + "\x00" + out_request_no
	notifications map[string]*notification
	notifyOrder   []string       // notify_ids, oldest first
	jobs          map[string]int // running deliveries per out_trade_no
	changed       simkit.Changes // broadcast whenever a delivery is recorded or a job ends
	faults        Faults
	failNext      Failure
	failLeft      int

	state *simkit.StateFile // nil without a state path
}

// New validates opts, loads or generates the keys (and certificates in
// CertMode) and returns a Server that is not yet listening.
func New(opts Options) (*Server, error) {
	if opts.AppID == "" {
		return nil, errors.New("alipaysim options: AppID is empty")
	}
	if opts.RetryScale < 0 {
		return nil, errors.New("alipaysim options: RetryScale is negative")
	}
	s := &Server{
		appID:             opts.AppID,
		sellerID:          opts.SellerID,
		merchantName:      opts.MerchantName,
		certMode:          opts.CertMode,
		legacyContentType: opts.LegacyNotifyContentType,
		timestampWindow:   opts.TimestampWindow,
		now:               opts.Now,
		log:               opts.Logger,
		trades:            map[string]*TradeState{},
		byTradeNo:         map[string]string{},
		refunds:           map[string]*RefundState{},
		notifications:     map[string]*notification{},
		jobs:              map[string]int{},
	}
	if s.sellerID == "" {
		s.sellerID = "2088" + randDigits(12)
	}
	if s.merchantName == "" {
		s.merchantName = "alipaysim merchant"
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.schedule = opts.RetrySchedule
	if s.schedule == nil {
		s.schedule = DefaultRetrySchedule()
	} else {
		s.schedule = append([]time.Duration(nil), s.schedule...)
	}
	if opts.RetryScale > 0 {
		for i, d := range s.schedule {
			s.schedule[i] = time.Duration(float64(d) * opts.RetryScale)
		}
	}
	s.deliveryTimeout = opts.DeliveryTimeout
	if s.deliveryTimeout <= 0 {
		s.deliveryTimeout = 5 * time.Second
	}
	kr, err := loadKeys(opts, s.now())
	if err != nil {
		return nil, fmt.Errorf("alipaysim keys: %w", err)
	}
	s.keys = kr
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		s.transport = t.Clone()
	} else {
		s.transport = &http.Transport{}
	}
	s.hc = opts.HTTPClient
	if s.hc == nil {
		s.hc = &http.Client{
			Timeout:   s.deliveryTimeout,
			Transport: s.transport,
			// A redirect is a failed delivery.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	statePath := opts.StatePath
	if statePath == "" && opts.DataDir != "" {
		statePath = filepath.Join(opts.DataDir, FileState)
	}
	s.state = simkit.NewStateFile("alipaysim", statePath, s.encodeState, s.log)
	if err := s.loadState(); err != nil {
		return nil, err
	}
	s.run = simkit.NewServer("alipaysim", &s.mu, s.log)
	if s.state != nil {
		s.run.Go(func() { s.state.Run(s.run.Context()) })
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("/gateway.do", s.handleGateway)
	m.HandleFunc("GET /cashier/{trade_no}", s.handleCashierPage)
	m.HandleFunc("POST /cashier/{trade_no}/pay", s.handleCashierPay)
	m.HandleFunc("GET /cashier/{trade_no}/quit", s.handleCashierQuit)
	s.controlRoutes(m)
	s.mux = m
}

// ServeHTTP serves the gateway (/gateway.do), the cashier pages
// (/cashier/) and the /sim/ control API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Listen serves on addr (e.g. "127.0.0.1:0") in the background.
func (s *Server) Listen(addr string) error { return s.run.Listen(addr, s) }

// URL is "http://127.0.0.1:PORT" after Listen, "" before.
func (s *Server) URL() string { return s.run.URL() }

// GatewayURL is URL() + "/gateway.do": give it to an Alipay client as its
// gateway (smartwalle/alipay: WithSandboxGateway or WithProductionGateway).
func (s *Server) GatewayURL() string { return s.URL() + "/gateway.do" }

// Close stops serving, ends pending notification retries, waits for them
// and writes the state file one last time.
func (s *Server) Close() error {
	return s.run.Close(func() error {
		s.transport.CloseIdleConnections()
		return s.state.Save()
	})
}
