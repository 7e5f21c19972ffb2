package wxpay

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"

	"github.com/payfn/payfn/shared/app"
)

const (
	signatureType        = "WECHATPAY2-SHA256-RSA2048"
	signatureProbePrefix = "WECHATPAY/SIGNTEST/"
	// aeadAlgorithm is the only resource encryption WeChat Pay uses.
	aeadAlgorithm = "AEAD_AES_256_GCM"
	// notifyWindow is the SDK's freshness rule: |now - timestamp| < 300 s.
	// Together with idempotent handling it bounds replays of captured
	// genuine notifications.
	notifyWindow = 300 * time.Second
)

func badNotification(reason string) error {
	return fmt.Errorf("%w: %s", app.ErrBadNotification, reason)
}

// ParseNotification verifies a payment notification from its exact headers
// and raw body: signature by Wechatpay-Serial (public key or platform
// certificate), the five-minute timestamp window, then AES-256-GCM
// decryption with the APIv3 key. Every failure wraps app.ErrBadNotification
// with a short reason of our own (the SDK's error text embeds the whole
// request); signature probes fail too. It never panics. In
// platform-certificate mode a failed certificate download wraps
// app.ErrChannelUnavailable instead, so the caller answers 5xx and WeChat
// Pay retries. It does not check event type, trade state, appid, mchid or
// amounts: that is the caller's business.
func (c *Channel) ParseNotification(ctx context.Context, header http.Header, body []byte) (app.Notification, error) {
	var tx payments.Transaction
	env, err := c.parse(ctx, header, body, func(plaintext []byte) error { return decodeTransaction(plaintext, &tx) })
	if err != nil {
		return app.Notification{}, err
	}
	t, err := toTransaction(&tx)
	if err != nil {
		return app.Notification{}, badNotification("success_time is not RFC 3339")
	}
	return app.Notification{ID: env.id, EventType: env.eventType, CreateTime: env.createTime, Transaction: t}, nil
}

// refundResource is a decrypted refund notification; the SDK has no model
// for it.
type refundResource struct {
	MchID       string `json:"mchid"`
	OutTradeNo  string `json:"out_trade_no"`
	OutRefundNo string `json:"out_refund_no"`
	RefundID    string `json:"refund_id"`
	Status      string `json:"refund_status"`
	SuccessTime string `json:"success_time"`
	Amount      struct {
		Total  int64 `json:"total"`
		Refund int64 `json:"refund"`
	} `json:"amount"`
}

// ParseRefundNotification verifies and decrypts a refund notification with
// exactly the checks of ParseNotification.
func (c *Channel) ParseRefundNotification(ctx context.Context, header http.Header, body []byte) (app.RefundNotification, error) {
	var r refundResource
	env, err := c.parse(ctx, header, body, func(plaintext []byte) error { return unmarshalOnce(plaintext, &r) })
	if err != nil {
		return app.RefundNotification{}, err
	}
	res := app.RefundResult{
		MchID: r.MchID, OutTradeNo: r.OutTradeNo, OutRefundNo: r.OutRefundNo, RefundID: r.RefundID,
		Status: r.Status, RefundFen: r.Amount.Refund, TotalFen: r.Amount.Total,
	}
	if r.SuccessTime != "" {
		t, err := time.Parse(time.RFC3339, r.SuccessTime)
		if err != nil {
			return app.RefundNotification{}, badNotification("success_time is not RFC 3339")
		}
		res.SuccessTime = t
	}
	return app.RefundNotification{ID: env.id, EventType: env.eventType, Refund: res}, nil
}

// parse verifies a notification, decrypts its resource and hands the
// plaintext to decode, whose error means the plaintext is malformed.
func (c *Channel) parse(ctx context.Context, header http.Header, body []byte, decode func(plaintext []byte) error) (env envelope, err error) {
	defer func() {
		// The SDK panics on some signed-but-malformed input; the checks below
		// should stop it first, this is the backstop.
		if p := recover(); p != nil {
			env, err = envelope{}, badNotification("malformed notification")
		}
	}()
	serial := strings.TrimSpace(header.Get("Wechatpay-Serial"))
	sig := strings.TrimSpace(header.Get("Wechatpay-Signature"))
	tsText := strings.TrimSpace(header.Get("Wechatpay-Timestamp"))
	nonce := strings.TrimSpace(header.Get("Wechatpay-Nonce"))
	if serial == "" || sig == "" || tsText == "" || nonce == "" {
		return envelope{}, badNotification("missing Wechatpay signature headers")
	}
	if strings.HasPrefix(sig, signatureProbePrefix) {
		return envelope{}, badNotification("signature probe")
	}
	if st := header.Get("Wechatpay-Signature-Type"); st != "" && st != signatureType {
		return envelope{}, badNotification("unsupported signature type")
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return envelope{}, badNotification("malformed timestamp")
	}
	// time.Now, not an injected clock: the SDK's validator below uses it too.
	if d := time.Since(time.Unix(ts, 0)); d >= notifyWindow || d <= -notifyWindow {
		return envelope{}, badNotification("timestamp outside the 5-minute window")
	}
	if c.mode == modeCertificate || (c.mode == modeCombined && !c.isPublicKeyID(serial)) {
		if err := c.ensureCerts(ctx, serial); err != nil {
			return envelope{}, fmt.Errorf("notification: %w", err)
		}
	}
	if err := c.verifySignature(ctx, serial, tsText, nonce, body, sig); err != nil {
		return envelope{}, badNotification("signature verification failed")
	}
	// The signature is good. Decrypt as the SDK's notify.Handler does
	// (ParseNotifyRequest: envelope, algorithm, AES-256-GCM open, plaintext
	// into content), without its second verification of the same signature:
	// an RSA verify is most of a notification's CPU.
	if !decodeEnvelope(body, &env) {
		return envelope{}, badNotification("body is not JSON")
	}
	if !env.hasResource {
		return envelope{}, badNotification("no resource")
	}
	if len(env.nonce) != c.aead.NonceSize() {
		return envelope{}, badNotification("resource nonce is not 12 bytes")
	}
	if string(env.algorithm) != aeadAlgorithm {
		return envelope{}, badNotification("decryption or parsing failed")
	}
	ciphertext := make([]byte, base64.StdEncoding.DecodedLen(len(env.ciphertext)))
	n, err := base64.StdEncoding.Decode(ciphertext, env.ciphertext)
	if err != nil {
		return envelope{}, badNotification("decryption or parsing failed")
	}
	ciphertext = ciphertext[:n]
	plaintext, err := c.open(ciphertext, env.nonce, env.associatedData)
	if err != nil {
		return envelope{}, badNotification("decryption or parsing failed")
	}
	if err := decode(plaintext); err != nil {
		return envelope{}, badNotification("decryption or parsing failed")
	}
	return env, nil
}

var newline = []byte{'\n'}

// verifySignature checks sig, by the key serial names, over WeChat Pay's
// signed message "timestamp\nnonce\nbody\n". When serial names the
// configured public key it does exactly what the SDK's public-key verifier
// does (base64-decode the signature, SHA-256, rsa.VerifyPKCS1v15 with that
// key) but hashes the parts in place instead of first copying the body
// twice into one message string and its bytes. Platform certificates, and
// any other serial, go through the SDK verifier as before.
func (c *Channel) verifySignature(ctx context.Context, serial, ts, nonce string, body []byte, sig string) error {
	if c.mode == modeCertificate || serial != c.cfg.PublicKeyID || ctx == nil {
		return c.verifier.Verify(ctx, serial, ts+"\n"+nonce+"\n"+string(body)+"\n", sig)
	}
	sigBytes, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return err
	}
	h := sha256.New()
	h.Write([]byte(ts + "\n" + nonce + "\n"))
	h.Write(body)
	h.Write(newline)
	var sum [sha256.Size]byte
	return rsa.VerifyPKCS1v15(c.cfg.PublicKey, crypto.SHA256, h.Sum(sum[:0]), sigBytes)
}

// envelope is what parse uses of a notification body (notify.Request in
// the SDK). The resource's fields are the body's own bytes.
type envelope struct {
	id, eventType  string
	createTime     time.Time
	hasResource    bool
	algorithm      []byte
	ciphertext     []byte
	nonce          []byte
	associatedData []byte
}

// decodeEnvelope decodes a notification body into env and reports whether
// it is valid JSON of notify.Request's shape, exactly as json.Unmarshal into
// a notify.Request would decide and decode it. Bodies in the plain subset
// of JSON that WeChat Pay sends (see plainJSON) are read in one pass without
// copying; anything else goes through encoding/json and notify.Request.
func decodeEnvelope(body []byte, env *envelope) bool {
	if fastEnvelope(body, env) {
		return true
	}
	*env = envelope{}
	return slowEnvelope(body, env)
}

// slowEnvelope is decodeEnvelope through encoding/json and notify.Request,
// refusing a body that names a field twice (see unmarshalOnce).
func slowEnvelope(body []byte, env *envelope) bool {
	var nr notify.Request
	if err := unmarshalOnce(body, &nr); err != nil {
		return false
	}
	env.id, env.eventType = nr.ID, nr.EventType
	if nr.CreateTime != nil {
		env.createTime = *nr.CreateTime
	}
	if r := nr.Resource; r != nil {
		env.hasResource = true
		env.algorithm = []byte(r.Algorithm)
		env.ciphertext = []byte(r.Ciphertext)
		env.nonce = []byte(r.Nonce)
		env.associatedData = []byte(r.AssociatedData)
	}
	return true
}

// Keys of notify.Request and notify.EncryptedResource, as bits of a set of
// keys seen.
const (
	keyID = 1 << iota
	keyCreateTime
	keyEventType
	keyResourceType
	keyResource
	keySummary
	keyAlgorithm
	keyCiphertext
	keyAssociatedData
	keyNonce
	keyOriginalType
)

func fastEnvelope(body []byte, env *envelope) bool {
	p := plainJSON{b: body}
	var seen int
	ok := p.object(func(key []byte) bool {
		var bit int
		switch string(key) {
		case "id":
			bit = keyID
		case "create_time":
			bit = keyCreateTime
		case "event_type":
			bit = keyEventType
		case "resource_type":
			bit = keyResourceType
		case "resource":
			bit = keyResource
		case "summary":
			bit = keySummary
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		if bit == keyResource {
			env.hasResource = true
			return p.object(func(key []byte) bool {
				var bit int
				var dst *[]byte
				switch string(key) {
				case "algorithm":
					bit, dst = keyAlgorithm, &env.algorithm
				case "ciphertext":
					bit, dst = keyCiphertext, &env.ciphertext
				case "associated_data":
					bit, dst = keyAssociatedData, &env.associatedData
				case "nonce":
					bit, dst = keyNonce, &env.nonce
				case "original_type":
					bit = keyOriginalType
				default:
					return false
				}
				if seen&bit != 0 {
					return false
				}
				seen |= bit
				start, end, ok := p.str()
				if ok && dst != nil {
					*dst = body[start:end:end]
				}
				return ok
			})
		}
		start, end, ok := p.str()
		if !ok {
			return false
		}
		switch bit {
		case keyID:
			env.id = string(body[start:end])
		case keyEventType:
			env.eventType = string(body[start:end])
		case keyCreateTime:
			// The very call encoding/json makes, on the same quoted bytes.
			if env.createTime.UnmarshalJSON(body[start-1:end+1]) != nil {
				return false
			}
		}
		return true
	})
	return ok && p.end()
}

// decodeTransaction decodes a decrypted payment resource into tx exactly as
// json.Unmarshal would, and fails when json.Unmarshal would or when the
// resource names a field twice. The plain subset of JSON (see plainJSON) is
// read in one pass into one allocation; anything else goes through
// unmarshalOnce.
func decodeTransaction(plaintext []byte, tx *payments.Transaction) error {
	if fastTransaction(plaintext, tx) {
		return nil
	}
	*tx = payments.Transaction{}
	return unmarshalOnce(plaintext, tx)
}

// errRepeatedKey is unmarshalOnce's refusal.
var errRepeatedKey = errors.New("an object names a key twice")

// unmarshalOnce is json.Unmarshal that first refuses a document in which any
// object, at any depth, names a key twice. encoding/json keeps the last
// copy, and matches keys to fields without regard to case, so keys are
// compared folded as it folds them: "amount" twice, or "total" and "TOTAL",
// would otherwise let whoever appended a copy decide what the notification
// says. WeChat Pay never repeats a key, so a signed notification that does is
// malformed, not a choice to make on its last copy.
func unmarshalOnce(data []byte, v any) error {
	if repeatsKey(data) {
		return errRepeatedKey
	}
	return json.Unmarshal(data, v)
}

// repeatsKey reports whether some object in data names a key twice (folded
// as encoding/json folds). For invalid JSON the answer does not matter:
// json.Unmarshal refuses it anyway.
func repeatsKey(data []byte) bool {
	// One frame per open object or array; an object's frame holds its folded
	// keys so far and whether the next token is a key (json.Decoder's Token
	// does not say which strings are keys).
	type frame struct {
		keys    map[string]bool // nil for an array
		wantKey bool
	}
	var open []*frame
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(open) > 0 {
			top = open[len(open)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			open = open[:len(open)-1]
			if len(open) == 0 {
				return false
			}
			continue
		}
		if top != nil && top.wantKey {
			k := foldKey(tok.(string)) // Token yields only strings as keys
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.wantKey = false
			continue
		}
		// A value: once it ends, its object expects a key again.
		if top != nil && top.keys != nil {
			top.wantKey = true
		}
		switch tok {
		case json.Delim('{'):
			open = append(open, &frame{keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			open = append(open, &frame{})
		default:
			if top == nil {
				return false // a bare scalar
			}
		}
	}
}

// foldKey maps every rune to the smallest rune of its case-folding set, so
// two keys fold alike exactly when encoding/json (bytes.EqualFold) would
// match them to the same field.
func foldKey(key string) string {
	return strings.Map(func(r rune) rune {
		for {
			f := unicode.SimpleFold(r)
			if f <= r {
				return f
			}
			r = f
		}
	}, key)
}

// txValues holds what a payments.Transaction's pointers point to, so that
// fastTransaction allocates once.
type txValues struct {
	appid, attach, bankType, mchid, outTradeNo, successTime      string
	tradeState, tradeStateDesc, tradeType, transactionID, openid string
	currency, payerCurrency                                      string
	total, payerTotal                                            int64
	amount                                                       payments.TransactionAmount
	payer                                                        payments.TransactionPayer
}

// Keys of payments.Transaction and its amount and payer, as bits.
const (
	keyAppid = 1 << iota
	keyAttach
	keyBankType
	keyMchid
	keyOutTradeNo
	keySuccessTime
	keyTradeState
	keyTradeStateDesc
	keyTradeType
	keyTransactionID
	keyAmount
	keyPayer
	keyCurrency
	keyPayerCurrency
	keyTotal
	keyPayerTotal
	keyOpenid
)

func fastTransaction(plaintext []byte, tx *payments.Transaction) bool {
	p := plainJSON{b: plaintext}
	s := string(plaintext) // one copy; every string field is a slice of it
	v := new(txValues)
	var seen int
	str := func(bit int, dst *string, ptr **string) bool {
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		start, end, ok := p.str()
		if ok {
			*dst = s[start:end]
			*ptr = dst
		}
		return ok
	}
	num := func(bit int, dst *int64, ptr **int64) bool {
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		n, ok := p.int64()
		if ok {
			*dst = n
			*ptr = dst
		}
		return ok
	}
	ok := p.object(func(key []byte) bool {
		switch string(key) {
		case "appid":
			return str(keyAppid, &v.appid, &tx.Appid)
		case "attach":
			return str(keyAttach, &v.attach, &tx.Attach)
		case "bank_type":
			return str(keyBankType, &v.bankType, &tx.BankType)
		case "mchid":
			return str(keyMchid, &v.mchid, &tx.Mchid)
		case "out_trade_no":
			return str(keyOutTradeNo, &v.outTradeNo, &tx.OutTradeNo)
		case "success_time":
			return str(keySuccessTime, &v.successTime, &tx.SuccessTime)
		case "trade_state":
			return str(keyTradeState, &v.tradeState, &tx.TradeState)
		case "trade_state_desc":
			return str(keyTradeStateDesc, &v.tradeStateDesc, &tx.TradeStateDesc)
		case "trade_type":
			return str(keyTradeType, &v.tradeType, &tx.TradeType)
		case "transaction_id":
			return str(keyTransactionID, &v.transactionID, &tx.TransactionId)
		case "amount":
			if seen&keyAmount != 0 {
				return false
			}
			seen |= keyAmount
			tx.Amount = &v.amount
			return p.object(func(key []byte) bool {
				switch string(key) {
				case "currency":
					return str(keyCurrency, &v.currency, &v.amount.Currency)
				case "payer_currency":
					return str(keyPayerCurrency, &v.payerCurrency, &v.amount.PayerCurrency)
				case "total":
					return num(keyTotal, &v.total, &v.amount.Total)
				case "payer_total":
					return num(keyPayerTotal, &v.payerTotal, &v.amount.PayerTotal)
				}
				return false
			})
		case "payer":
			if seen&keyPayer != 0 {
				return false
			}
			seen |= keyPayer
			tx.Payer = &v.payer
			return p.object(func(key []byte) bool {
				if string(key) == "openid" {
					return str(keyOpenid, &v.openid, &v.payer.Openid)
				}
				return false
			})
		}
		return false // promotion_detail, and any key not spelt exactly as the model's
	})
	return ok && p.end()
}

// plainJSON reads the plain subset of JSON that WeChat Pay's notifications
// are written in: objects whose keys and string values hold no escape, no
// control character and only valid UTF-8, and integers without fraction or
// exponent. On that subset encoding/json's result is the bytes as they
// stand, so reading them directly is the same decode without its second
// pass (validation) and reflection. Whatever falls outside (escapes, null,
// true/false, arrays, other numbers, keys spelt in another case, repeated
// keys, trailing data) makes the reader report false, and the caller falls
// back to encoding/json: the subset only ever changes speed, never the
// outcome. FuzzPlainDecodeMatchesEncodingJSON checks this.
type plainJSON struct {
	b []byte
	i int
}

func (p *plainJSON) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// object reads an object, calling field with each key when the reader is
// at the key's value; field reads the value and reports whether it could.
func (p *plainJSON) object(field func(key []byte) bool) bool {
	p.space()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return false
	}
	p.i++
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return true
	}
	for {
		p.space()
		start, end, ok := p.str()
		if !ok {
			return false
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return false
		}
		p.i++
		p.space()
		if !field(p.b[start:end]) {
			return false
		}
		p.space()
		if p.i >= len(p.b) {
			return false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// str reads a plain string and returns the bounds of its contents.
func (p *plainJSON) str() (start, end int, ok bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return 0, 0, false
	}
	start = p.i + 1
	ascii := true
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			if !ascii && !utf8.Valid(p.b[start:j]) {
				return 0, 0, false
			}
			p.i = j + 1
			return start, j, true
		case c == '\\' || c < 0x20:
			return 0, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return 0, 0, false
}

// int64 reads an integer of at most 18 digits, which always fits.
func (p *plainJSON) int64() (int64, bool) {
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - digits
	if n == 0 || n > 18 || (n > 1 && p.b[digits] == '0') {
		return 0, false
	}
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	v, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
	return v, err == nil
}

// end reports whether only white space follows.
func (p *plainJSON) end() bool {
	p.space()
	return p.i == len(p.b)
}
