package setup_test

// Test-only helpers for the reliability tests (issue 3): a store wrapper that
// counts decisions and injects faults at each write, a harness built on it,
// a snapshot of everything the store holds, a forger that signs and encrypts
// arbitrary notifications as WeChat Pay would, and the figures the long run
// (scripts/reliability) collects.

import (
	"cmp"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/setup"
	"github.com/payfn/payfn/shared/store"
	"github.com/payfn/payfn/shared/store/storetest"
	"github.com/payfn/payfn/shared/wxpay"
)

// reliabilityN is how many concurrent callers a race test uses:
// PAYFN_RELIABILITY_N when set (scripts/reliability sets 1000 or more),
// otherwise def, small enough for `go test ./...` on a 2-core CI machine.
func reliabilityN(t testing.TB, def int) int {
	t.Helper()
	return reliabilityNFrom(t, "PAYFN_RELIABILITY_N", def)
}

// reliabilityNFrom is reliabilityN read from env. The close race has its own
// (PAYFN_RELIABILITY_CLOSE_N): each of its racers is a whole order, set up
// and swept in batches, so it costs far more per racer than a delivery.
func reliabilityNFrom(t testing.TB, env string, def int) int {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 2 {
		t.Fatalf("%s=%q: want an integer >= 2", env, v)
	}
	return n
}

// figures are what one reliability case measured. scripts/reliability reads
// them from PAYFN_RELIABILITY_REPORT (one JSON object a line) and prints the
// table RELIABILITY.md quotes.
type figures struct {
	Case                string         `json:"case"`
	Tried               int            `json:"tried"`                // attempts made (deliveries, requests, injected faults)
	Answers             map[string]int `json:"answers"`              // HTTP status (or "dropped") -> count
	LedgerRows          int            `json:"ledger_rows"`          // payments rows at the end
	Transitions         int            `json:"transitions"`          // claims won: the order left NOTPAY this many times
	StateChanges        int            `json:"state_changes"`        // unexpected changes to orders/ledger/claims
	DuplicatesFulfilled int            `json:"duplicates_fulfilled"` // transitions beyond the first, per order
}

var reportMu sync.Mutex

// report logs f and, when PAYFN_RELIABILITY_REPORT names a file, appends it.
func report(t testing.TB, f figures) {
	t.Helper()
	b, _ := json.Marshal(f)
	t.Logf("figures: %s", b)
	path := os.Getenv("PAYFN_RELIABILITY_REPORT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	defer fh.Close()
	if _, err := fmt.Fprintf(fh, "%s\n", b); err != nil {
		t.Fatalf("report: %v", err)
	}
}

// Store operations a fault can be injected at: every write the use cases make.
const (
	opInsertOrder   = "InsertOrder"
	opSetPrepay     = "SetPrepay"
	opRecordPayment = "RecordPayment"
	opClaim         = "Claim"
	opApplyClaim    = "ApplyClaim"
)

// faultMode says what happens at an armed write.
type faultMode int

const (
	// failInstead skips the write and returns an error: the store refused.
	failInstead faultMode = iota + 1
	// failAfter makes the write, then returns an error: the function learnt
	// nothing of its own success and stops there.
	failAfter
	// dieAfter makes the write, then aborts the invocation without an
	// answer (http.ErrAbortHandler): the process was killed right after it.
	dieAfter
)

func (m faultMode) String() string {
	switch m {
	case failInstead:
		return "error instead of the write"
	case failAfter:
		return "error after the write"
	case dieAfter:
		return "killed after the write"
	}
	return "none"
}

var errInjected = errors.New("injected store fault")

// faultStore passes every call through to the real store. It counts the
// decisions made (claims won, per status) and, when armed, injects one fault
// at the next call of one write. Embedding app.Store keeps it compiling when
// the interface grows: new methods pass through untouched.
type faultStore struct {
	app.Store

	mu     sync.Mutex
	armed  string // op, "" when disarmed
	mode   faultMode
	fired  int
	wins   map[order.Status]int
	writes map[string]int // successful writes per op
}

func newFaultStore(s app.Store) *faultStore {
	return &faultStore{Store: s, wins: map[order.Status]int{}, writes: map[string]int{}}
}

// arm injects mode at the next call of op that can take it (for the "after"
// modes, the next call that actually writes).
func (f *faultStore) arm(op string, mode faultMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed, f.mode = op, mode
}

func (f *faultStore) firedCount() int { f.mu.Lock(); defer f.mu.Unlock(); return f.fired }

func (f *faultStore) winsOf(s order.Status) int { f.mu.Lock(); defer f.mu.Unlock(); return f.wins[s] }

func (f *faultStore) allWins() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, w := range f.wins {
		n += w
	}
	return n
}

// before runs ahead of a write: it reports whether to fail instead of it.
func (f *faultStore) before(op string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.armed == op && f.mode == failInstead {
		f.armed = ""
		f.fired++
		return true
	}
	return false
}

// after runs once a write succeeded (wrote reports whether it changed
// anything) and returns the error to answer with, or aborts the invocation.
func (f *faultStore) after(op string, wrote bool) error {
	f.mu.Lock()
	if wrote {
		f.writes[op]++
	}
	fire := wrote && f.armed == op && (f.mode == failAfter || f.mode == dieAfter)
	mode := f.mode
	if fire {
		f.armed = ""
		f.fired++
	}
	f.mu.Unlock()
	if !fire {
		return nil
	}
	if mode == dieAfter {
		// net/http drops the connection without an answer, as when the
		// process dies; the caller (WeChat Pay, the client) sees no reply.
		panic(http.ErrAbortHandler)
	}
	return fmt.Errorf("%s: %w (after the write)", op, errInjected)
}

func (f *faultStore) InsertOrder(ctx context.Context, o order.Order) error {
	if f.before(opInsertOrder) {
		return fmt.Errorf("insert order: %w", errInjected)
	}
	err := f.Store.InsertOrder(ctx, o)
	if err != nil {
		return err
	}
	return f.after(opInsertOrder, true)
}

func (f *faultStore) SetPrepay(ctx context.Context, orderID, prepayID string, expiresAt time.Time) error {
	if f.before(opSetPrepay) {
		return fmt.Errorf("set prepay: %w", errInjected)
	}
	if err := f.Store.SetPrepay(ctx, orderID, prepayID, expiresAt); err != nil {
		return err
	}
	return f.after(opSetPrepay, true)
}

func (f *faultStore) RecordPayment(ctx context.Context, p order.Payment) error {
	if f.before(opRecordPayment) {
		return fmt.Errorf("record payment: %w", errInjected)
	}
	if err := f.Store.RecordPayment(ctx, p); err != nil {
		return err // a duplicate wrote nothing: no "after" fault
	}
	return f.after(opRecordPayment, true)
}

func (f *faultStore) Claim(ctx context.Context, c order.Claim) (order.Claim, bool, error) {
	if f.before(opClaim) {
		return order.Claim{}, false, fmt.Errorf("claim: %w", errInjected)
	}
	got, won, err := f.Store.Claim(ctx, c)
	if err != nil {
		return got, won, err
	}
	if won {
		f.mu.Lock()
		f.wins[got.Status]++
		f.mu.Unlock()
	}
	if err := f.after(opClaim, won); err != nil {
		return order.Claim{}, false, err
	}
	return got, won, nil
}

func (f *faultStore) ApplyClaim(ctx context.Context, c order.Claim) error {
	if f.before(opApplyClaim) {
		return fmt.Errorf("apply claim: %w", errInjected)
	}
	if err := f.Store.ApplyClaim(ctx, c); err != nil {
		return err
	}
	return f.after(opApplyClaim, true)
}

// rigOptions adjust newRig.
type rigOptions struct {
	retry   []time.Duration  // the simulator's notification retry schedule; default 5 quick retries
	uri, db string           // the store; default a fresh database on storetest's server
	sst     time.Duration    // store server-selection timeout; default 3s
	now     func() time.Time // the app's and the sessions' clock; default time.Now
	ttl     time.Duration    // order and session lifetime; default 30m / 1h
	// wrap, when set, puts test hooks around the fault store and the real
	// channel (to pause one side of a race, say).
	wrap func(app.Store, app.Channel) (app.Store, app.Channel)
	// maxOpen is the open-orders cap per buyer; 0 means none, because the
	// races place hundreds of orders for one buyer.
	maxOpen int
}

// rig is a harness whose App reaches the real store through a faultStore.
// It is wired like setup.NewStack (same App, same real wxpay channel against
// the simulator, same real store, same httpapi routes) except for that
// wrapper, which design.md allows for injecting faults.
type rig struct {
	*harness
	faults *faultStore
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	if o.retry == nil {
		o.retry = []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond}
	}
	if o.uri == "" {
		o.uri, o.db = storetest.URI(t)
	}
	if o.ttl == 0 {
		o.ttl = 30 * time.Minute
	}
	sim := startSim(t, o.retry)
	front, url := frontServer(t)
	cfg := testConfig(sim, url, o.uri, o.db, o.ttl)
	k := sim.Keys()
	real, err := store.New(store.Options{URI: cfg.MongoURI, Database: cfg.MongoDatabase, ServerSelectionTimeout: o.sst})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := wxpay.New(wxpay.Config{
		MchID: cfg.MchID, AppID: cfg.AppID, MchCertSerial: cfg.MchCertSerial, MchPrivateKey: merchantKey,
		APIv3Key: cfg.APIv3Key, NotifyURL: cfg.NotifyURL, BaseURL: cfg.PayBaseURL, Timeout: cfg.PayTimeout,
		PublicKeyID: k.PublicKeyID, PublicKey: k.PublicKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := identity.NewTokens([]byte(cfg.SessionSecret), cfg.SessionTTL, o.now)
	if err != nil {
		t.Fatal(err)
	}
	codes, err := identity.NewCodeExchange(identity.CodeExchangeOptions{BaseURL: sim.URL(), AppID: cfg.AppID, AppSecret: cfg.AppSecret})
	if err != nil {
		t.Fatal(err)
	}
	fs := newFaultStore(real)
	var appStore app.Store = fs
	var appChannel app.Channel = ch
	if o.wrap != nil {
		appStore, appChannel = o.wrap(fs, ch)
	}
	a := app.New(app.Config{Store: appStore, Channel: appChannel, Sessions: sessions, Codes: codes, OrderTTL: cfg.OrderTTL, Now: o.now, AdminKey: cfg.AdminKey, MaxOpenOrders: cmp.Or(o.maxOpen, -1)})
	stack := &setup.Stack{Handler: httpapi.New(a, nil).Routes(), Store: real, Channel: ch, App: a}
	t.Cleanup(func() { stack.Close(context.Background()) })
	front.Store(stack.Handler)
	seed(t, stack)
	return &rig{harness: &harness{t: t, sim: sim, stack: stack, url: url, cfg: cfg}, faults: fs}
}

// snapshot is everything the store holds that a request could change:
// every order, ledger row and claim, as canonical extended JSON.
type snapshot map[string][]string

// dbSnapshot reads the harness's whole database, so "nothing written" is
// checked on the store itself, not on one order the test thought of.
func (h *harness) dbSnapshot() snapshot {
	h.t.Helper()
	return h.snapshotFor(h.t)
}

// snapshotFor is dbSnapshot failing tb: a fuzz target's *testing.T, since a
// fuzz function may not call its *testing.F.
func (h *harness) snapshotFor(tb testing.TB) snapshot {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db := h.snapshotDB(tb)
	snap := snapshot{}
	for _, coll := range []string{"orders", "payments", "claims", "products"} {
		cur, err := db.Collection(coll).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			tb.Fatalf("snapshot %s: %v", coll, err)
		}
		var docs []bson.Raw
		if err := cur.All(ctx, &docs); err != nil {
			tb.Fatalf("snapshot %s: %v", coll, err)
		}
		for _, d := range docs {
			b, err := bson.MarshalExtJSON(d, true, false)
			if err != nil {
				tb.Fatal(err)
			}
			snap[coll] = append(snap[coll], string(b))
		}
	}
	return snap
}

// snapshotDB is the harness's database through a client of its own, kept
// for the harness's life: fuzz targets snapshot on every input.
func (h *harness) snapshotDB(tb testing.TB) *mongo.Database {
	tb.Helper()
	h.snapMu.Lock()
	defer h.snapMu.Unlock()
	if h.snapClient == nil {
		c, err := mongo.Connect(options.Client().ApplyURI(h.cfg.MongoURI))
		if err != nil {
			tb.Fatal(err)
		}
		h.snapClient = c
		h.t.Cleanup(func() { c.Disconnect(context.Background()) })
	}
	return h.snapClient.Database(h.cfg.MongoDatabase)
}

// diff describes how b differs from a, or "" when they are equal.
func (a snapshot) diff(b snapshot) string {
	var out []string
	for _, coll := range []string{"orders", "payments", "claims", "products"} {
		x, y := a[coll], b[coll]
		if strings.Join(x, "\n") != strings.Join(y, "\n") {
			out = append(out, fmt.Sprintf("%s: before %d docs %v\nafter %d docs %v", coll, len(x), x, len(y), y))
		}
	}
	return strings.Join(out, "\n")
}

// forger acts as WeChat Pay with the simulator's own keys: it signs any body
// and encrypts any plaintext, so a test can reach each check behind the
// signature with exactly one thing wrong.
type forger struct {
	key      *rsa.PrivateKey
	serial   string
	apiV3Key string
}

func (h *harness) forger() forger {
	h.t.Helper()
	k := h.sim.Keys()
	block, _ := pem.Decode([]byte(k.PlatformPrivateKeyPEM))
	if block == nil {
		h.t.Fatal("simulator platform key is not PEM")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		h.t.Fatal(err)
	}
	return forger{key: key.(*rsa.PrivateKey), serial: k.PublicKeyID, apiV3Key: k.APIv3Key}
}

// sign returns WeChat Pay's notification headers for body, signed now.
func (f forger) sign(tb testing.TB, body []byte) http.Header {
	tb.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := "n" + strconv.FormatInt(time.Now().UnixNano(), 36)
	sum := sha256.Sum256([]byte(ts + "\n" + nonce + "\n" + string(body) + "\n"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, f.key, crypto.SHA256, sum[:])
	if err != nil {
		tb.Fatal(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", nonce)
	h.Set("Wechatpay-Serial", f.serial)
	h.Set("Wechatpay-Signature", base64.StdEncoding.EncodeToString(sig))
	h.Set("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048")
	return h
}

// seal encrypts plaintext as a notification resource (AEAD_AES_256_GCM).
func (f forger) seal(tb testing.TB, nonce, ad string, plaintext []byte) string {
	tb.Helper()
	block, err := aes.NewCipher([]byte(f.apiV3Key))
	if err != nil {
		tb.Fatal(err)
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(nonce))
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(gcm.Seal(nil, []byte(nonce), plaintext, []byte(ad)))
}

// envelope is a notification body as a map, for editing.
func (f forger) envelope(tb testing.TB, plaintext []byte) map[string]any {
	tb.Helper()
	return map[string]any{
		"id": "EV-" + strconv.FormatInt(time.Now().UnixNano(), 10), "create_time": time.Now().Format(time.RFC3339),
		"event_type": "TRANSACTION.SUCCESS", "resource_type": "encrypt-resource", "summary": "支付成功",
		"resource": map[string]any{
			"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
			"ciphertext": f.seal(tb, "abcdefghijkl", "transaction", plaintext), "associated_data": "transaction", "nonce": "abcdefghijkl",
		},
	}
}

// build marshals env and signs it.
func (f forger) build(tb testing.TB, env map[string]any) (http.Header, []byte) {
	tb.Helper()
	body, err := json.Marshal(env)
	if err != nil {
		tb.Fatal(err)
	}
	return f.sign(tb, body), body
}

// plaintext is tx as WeChat encrypts it.
func plaintext(tb testing.TB, tx paysim.Transaction) []byte {
	tb.Helper()
	b, err := json.Marshal(tx)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// serve runs one request through the handler in this goroutine, so a panic
// that escaped the handler fails the test instead of being swallowed by
// net/http: no panic may reach the runtime.
func serve(t testing.TB, handler http.Handler, path string, hdr http.Header, body []byte) (status int, raw []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
	for k, vs := range hdr {
		req.Header[k] = append([]string(nil), vs...)
	}
	rec := httptest.NewRecorder()
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("a panic reached the runtime: %v", p)
			}
		}()
		handler.ServeHTTP(rec, req)
	}()
	return rec.Code, rec.Body.Bytes()
}

// tryPost is post for callers that may be cut off (dieAfter): a dropped
// connection is status 0, not a test failure.
func (h *harness) tryPost(path, token string, v any) reply {
	h.t.Helper()
	b, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{status: 0, raw: []byte(err.Error())}
	}
	defer resp.Body.Close()
	var r reply
	r.status = resp.StatusCode
	dec := json.NewDecoder(resp.Body)
	_ = dec.Decode(&r.body)
	r.raw, _ = json.Marshal(r.body)
	return r
}

// claims returns the claims on an order.
func (h *harness) claims(orderID string) []order.Claim {
	h.t.Helper()
	cs, err := h.stack.Store.Claims(context.Background(), orderID)
	if err != nil {
		h.t.Fatal(err)
	}
	return cs
}

// statusKey names an answer for the figures: its status, or "dropped".
func statusKey(status int) string {
	if status == 0 {
		return "dropped"
	}
	return strconv.Itoa(status)
}
