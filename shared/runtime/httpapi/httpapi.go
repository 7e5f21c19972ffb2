package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/identity"
)

// Paths of the functions' HTTP routes, the same locally and in the clouds.
const (
	PathLogin         = "/login"
	PathCreateOrder   = "/createOrder"
	PathPay           = "/pay"
	PathQueryOrder    = "/queryOrder"
	PathVerifyPayment = "/notify/wechatpay"
	PathRefund        = "/admin/refund"
	PathVerifyRefund  = "/notify/wechatpay/refund"
	PathAlipayNotify  = "/notify/alipay"
)

// Body limits. Client requests are a few fields; a payment notification is
// about 1 KiB, so 64 KiB leaves room without letting a caller make us buffer
// megabytes.
const (
	MaxClientBody       = 8 << 10
	MaxNotificationBody = 64 << 10
)

// API serves payfn's functions over HTTP.
type API struct {
	app      *app.App
	log      *slog.Logger
	platform *identity.Platform // nil: token mode (see UsePlatformIdentity)
}

// New returns the HTTP face of a.
func New(a *app.App, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{app: a, log: logger}
}

// Routes returns every function on one mux, for the local stack.
func (api *API) Routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(PathLogin, api.Login())
	mux.Handle(PathCreateOrder, api.CreateOrder())
	mux.Handle(PathPay, api.Pay())
	mux.Handle(PathQueryOrder, api.QueryOrder())
	mux.Handle(PathVerifyPayment, api.VerifyPayment())
	mux.Handle(PathRefund, api.Refund())
	mux.Handle(PathBills, api.Bills())
	mux.Handle(PathVerifyRefund, api.VerifyRefund())
	mux.Handle(PathAlipayNotify, api.AlipayNotify())
	mux.Handle(PathServerAPI, api.ServerAPI())
	admin := api.AdminApps()
	mux.Handle(PathAdminApps, admin)
	mux.Handle(PathAdminApps+"/", admin)
	mux.Handle("/", api.NotFound())
	return mux
}

// NotFound answers any path no function serves, whatever the method, with
// 404 {"code":"NOT_FOUND"}: JSON like every other answer, not net/http's
// text page.
func (api *API) NotFound() http.Handler {
	return api.handle("notFound", func(w http.ResponseWriter, r *http.Request, lg *logLine) error {
		return &httpError{status: http.StatusNotFound, code: app.CodeNotFound, msg: "no function answers at this path"}
	})
}

type loginRequest struct {
	Code string `json:"code"`
}

// Login handles POST {code}. 200 {token, expires_at}.
func (api *API) Login() http.Handler {
	return api.endpoint("login", false, func(w http.ResponseWriter, r *http.Request, _ string, lg *logLine) error {
		var req loginRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		res, err := api.app.Login(r.Context(), req.Code)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, res)
	})
}

type createOrderRequest struct {
	ProductID string          `json:"product_id"`
	Quantity  json.RawMessage `json:"quantity"`
	RequestID string          `json:"request_id"`
}

var integerToken = regexp.MustCompile(`^-?[0-9]{1,18}$`)

// CreateOrder handles POST {product_id, quantity, request_id}. 201 with the
// new order, or 200 with the earlier one for a repeated request_id.
func (api *API) CreateOrder() http.Handler {
	return api.endpoint("createOrder", true, func(w http.ResponseWriter, r *http.Request, caller string, lg *logLine) error {
		var req createOrderRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		n, ok := wholeNumber(req.Quantity)
		if !ok {
			return app.Errorf(app.KindInvalid, app.CodeInvalidQuantity, "quantity must be a whole number from 1 to 999")
		}
		o, created, err := api.app.CreateOrder(r.Context(), caller, app.CreateOrderInput{ProductID: req.ProductID, Quantity: n, RequestID: req.RequestID})
		if err != nil {
			return err
		}
		lg.orderID = o.ID
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		return writeJSON(w, status, o)
	})
}

type orderRequest struct {
	OrderID string `json:"order_id"`
}

// Pay handles POST {order_id}. 200 {order_id, payment{...}} for wx.requestPayment.
func (api *API) Pay() http.Handler {
	return api.endpoint("pay", true, func(w http.ResponseWriter, r *http.Request, caller string, lg *logLine) error {
		var req orderRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		lg.orderID = req.OrderID
		res, err := api.app.Pay(r.Context(), caller, req.OrderID)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, res)
	})
}

// QueryOrder handles POST {order_id}. 200 with the caller's order.
func (api *API) QueryOrder() http.Handler {
	return api.endpoint("queryOrder", true, func(w http.ResponseWriter, r *http.Request, caller string, lg *logLine) error {
		var req orderRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		lg.orderID = req.OrderID
		o, err := api.app.QueryOrder(r.Context(), caller, req.OrderID)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, o)
	})
}

// VerifyPayment handles WeChat Pay's payment notification. It needs no
// session: WeChat Pay's signature is its authentication. 200
// {"code":"SUCCESS"} acknowledges; any 4xx/5xx makes WeChat Pay retry.
func (api *API) VerifyPayment() http.Handler {
	return api.endpoint("verifyPayment", false, func(w http.ResponseWriter, r *http.Request, _ string, lg *logLine) error {
		// The signature covers the exact bytes, so the body is read raw and
		// never re-encoded.
		body, err := readBody(http.MaxBytesReader(w, r.Body, MaxNotificationBody), r.ContentLength, MaxNotificationBody)
		if err != nil {
			return bodyError(err)
		}
		if err := api.app.VerifyPayment(r.Context(), r.Header, body); err != nil {
			return err
		}
		return writeAck(w)
	})
}

type refundRequest struct {
	OrderID     string          `json:"order_id"`
	OutRefundNo string          `json:"out_refund_no"`
	AmountFen   json.RawMessage `json:"amount_fen"`
	Reason      string          `json:"reason"`
}

// Refund handles the merchant's POST {order_id, out_refund_no, amount_fen,
// reason} with the admin key in X-Payfn-Admin-Key. 201 with the new refund,
// 200 with an earlier one for a repeated out_refund_no.
func (api *API) Refund() http.Handler {
	return api.endpoint("refund", false, func(w http.ResponseWriter, r *http.Request, _ string, lg *logLine) error {
		if err := api.app.AuthenticateAdmin(r.Header.Get("X-Payfn-Admin-Key")); err != nil {
			return err
		}
		var req refundRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		lg.orderID = req.OrderID
		amt, ok := wholeNumber(req.AmountFen)
		if !ok {
			return app.Errorf(app.KindInvalid, app.CodeInvalidAmount, "amount_fen must be a whole number of fen")
		}
		ref, created, err := api.app.Refund(r.Context(), app.RefundInput{OrderID: req.OrderID, OutRefundNo: req.OutRefundNo, AmountFen: amt, Reason: req.Reason})
		if err != nil {
			return err
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		return writeJSON(w, status, ref)
	})
}

// VerifyRefund handles WeChat Pay's refund notification, like VerifyPayment.
func (api *API) VerifyRefund() http.Handler {
	return api.endpoint("verifyRefund", false, func(w http.ResponseWriter, r *http.Request, _ string, lg *logLine) error {
		body, err := readBody(http.MaxBytesReader(w, r.Body, MaxNotificationBody), r.ContentLength, MaxNotificationBody)
		if err != nil {
			return bodyError(err)
		}
		if err := api.app.VerifyRefund(r.Context(), r.Header, body); err != nil {
			return err
		}
		return writeAck(w)
	})
}

// AlipayNotify handles Alipay's asynchronous notification: a form-encoded
// POST whose raw body the channel verifies (parameters come from the body
// only, never the query string). Recorded: 200 with the plain body
// "success", the only answer that stops Alipay's retries. Anything else
// is a JSON error, which Alipay treats as "send again".
func (api *API) AlipayNotify() http.Handler {
	return api.endpoint("alipayNotify", false, func(w http.ResponseWriter, r *http.Request, _ string, lg *logLine) error {
		body, err := readBody(http.MaxBytesReader(w, r.Body, MaxNotificationBody), r.ContentLength, MaxNotificationBody)
		if err != nil {
			return bodyError(err)
		}
		if err := api.app.VerifyNotification(r.Context(), app.ProviderAlipay, r.Header, body); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, err = io.WriteString(w, "success")
		return err
	})
}

// wholeNumber parses a bare JSON integer: not a string, not 1.0, not 1e3.
func wholeNumber(raw json.RawMessage) (int64, bool) {
	t := strings.TrimSpace(string(raw))
	if !integerToken.MatchString(t) {
		return 0, false
	}
	n, err := strconv.ParseInt(t, 10, 64)
	return n, err == nil
}

type errorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

// logLine collects what the access log line reports.
type logLine struct {
	orderID string
	caller  string
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, caller string, lg *logLine) error

// endpoint wraps a function: POST only, a JSON body of bounded size, the
// caller (see caller) when authenticated is set, and then what handle does.
func (api *API) endpoint(route string, authenticated bool, fn handlerFunc) http.Handler {
	return api.handle(route, func(w http.ResponseWriter, r *http.Request, lg *logLine) error {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			return &httpError{status: http.StatusMethodNotAllowed, code: app.CodeMethodNotAllowed, msg: "use POST"}
		}
		// A provider's notification is read as the provider sends it, bounded
		// by its own handler: Alipay's form may carry a malformed legacy
		// Content-Type.
		if route != "verifyPayment" && route != "verifyRefund" && route != "alipayNotify" {
			if err := checkJSONContentType(r); err != nil {
				return err
			}
			r.Body = http.MaxBytesReader(w, r.Body, MaxClientBody)
		}
		if authenticated {
			var err error
			if lg.caller, err = api.caller(r); err != nil {
				return err
			}
		}
		return fn(w, r, lg.caller, lg)
	})
}

// handle is what every answer shares: a request id (the platform's, or a
// new one) in the context and in the X-Request-Id header, errors turned into
// {code, message, request_id} with the status from statusOf, and one access
// log line.
func (api *API) handle(route string, fn func(w http.ResponseWriter, r *http.Request, lg *logLine) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r, reqID := ensureRequestID(r)
		w.Header().Set(HeaderRequestID, reqID)
		rec := &statusRecorder{ResponseWriter: w}
		lg := &logLine{}
		err := fn(rec, r, lg)
		if err != nil {
			api.writeError(rec, r, route, err)
		}
		// slog.Attrs in a fixed array, not key-value ...any: no allocation to
		// box each value; the line is the same.
		var buf [7]slog.Attr
		attrs := append(buf[:0], slog.String("route", route), slog.Int("status", rec.status), slog.Int64("duration_ms", time.Since(start).Milliseconds()),
			slog.String(logKeyRequestID, reqID))
		if lg.orderID != "" {
			attrs = append(attrs, slog.String("order_id", lg.orderID))
		}
		if lg.caller != "" {
			attrs = append(attrs, slog.String("caller", lg.caller))
		}
		if err != nil {
			attrs = append(attrs, slog.String("code", errorCode(err)))
		}
		api.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}

// httpError is an error of the HTTP layer itself (method, media type, body).
type httpError struct {
	status int
	code   string
	msg    string
}

func (e *httpError) Error() string { return e.code + ": " + e.msg }

func errorCode(err error) string {
	var he *httpError
	if errors.As(err, &he) {
		return he.code
	}
	return app.ErrorOf(err).Code
}

// statusOf is the one table from error kind to HTTP status.
var statusOf = map[app.Kind]int{
	app.KindInvalid:         http.StatusBadRequest,
	app.KindUnauthenticated: http.StatusUnauthorized,
	app.KindNotFound:        http.StatusNotFound,
	app.KindConflict:        http.StatusConflict,
	app.KindTooLarge:        http.StatusRequestEntityTooLarge,
	app.KindUnavailable:     http.StatusServiceUnavailable,
	app.KindBadGateway:      http.StatusBadGateway,
	app.KindTooMany:         http.StatusTooManyRequests,
	app.KindInternal:        http.StatusInternalServerError,
}

func (api *API) writeError(w http.ResponseWriter, r *http.Request, route string, err error) {
	reqID := RequestID(r.Context())
	var he *httpError
	if errors.As(err, &he) {
		WriteError(w, r, he.status, he.code, he.msg)
		return
	}
	e := app.ErrorOf(err)
	status, ok := statusOf[e.Kind]
	if !ok {
		status = http.StatusInternalServerError
	}
	msg := e.Message
	if status >= 500 {
		// The cause goes to the log only; the caller gets the code and the
		// request id to quote.
		api.log.ErrorContext(r.Context(), "request failed", "route", route, "code", e.Code, "request_id", reqID, "err", err)
		if e.Kind == app.KindInternal {
			msg = "internal error"
		}
	}
	WriteError(w, r, status, e.Code, msg)
}

// WriteError answers an error in the one shape every function uses:
// {code, message, request_id}, the id also in X-Request-Id. It is for
// answers given before a use case runs (shared/setup's "no secret yet").
func WriteError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	reqID := RequestID(r.Context())
	if reqID != "" {
		w.Header().Set(HeaderRequestID, reqID)
	}
	writeJSON(w, status, errorBody{Code: code, Message: message, RequestID: reqID})
}

// ackBody is what writeJSON writes for errorBody{Code: "SUCCESS", Message:
// "OK"}, the acknowledgement WeChat Pay expects (ack_test.go checks it).
var ackBody = []byte(`{"code":"SUCCESS","message":"OK"}` + "\n")

// writeAck answers a notification 200 {"code":"SUCCESS","message":"OK"},
// byte for byte what writeJSON would, without encoding it every time.
func writeAck(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(ackBody)
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func checkJSONContentType(r *http.Request) error {
	// A missing type is refused like any other: the contract asks for
	// application/json, and wx.request sends it.
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &httpError{status: http.StatusUnsupportedMediaType, code: app.CodeUnsupportedMedia, msg: "send Content-Type: application/json"}
	}
	return nil
}

// fieldCodes is the code of each request field, answered when its value
// has the wrong JSON type as when it is malformed. A field's code is the
// same in every request that has it.
var fieldCodes = map[string]string{
	"code":          app.CodeInvalidLoginCode,
	"product_id":    app.CodeInvalidProductID,
	"quantity":      app.CodeInvalidQuantity,
	"request_id":    app.CodeInvalidRequestID,
	"order_id":      app.CodeInvalidOrderID,
	"out_refund_no": app.CodeInvalidRefundNo,
	"amount_fen":    app.CodeInvalidAmount,
	"reason":        app.CodeInvalidReason,
}

// decode reads exactly one JSON object into v, a pointer to a request
// struct. Keys must name v's fields exactly, case included: encoding/json
// would match "PRODUCT_ID" to product_id, and a contract that says
// product_id should not quietly accept another spelling. It rejects unknown
// fields, a second value after the object, and any field named twice (a
// parser that kept the first and one that kept the last would disagree
// about the request). A value of the wrong JSON type answers the field's
// own code (fieldCodes).
func decode(r *http.Request, v any) error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return app.Errorf(app.KindInvalid, app.CodeInvalidRequest, "the body must be a JSON object")
	}
	// Malformed JSON anywhere (trailing bytes included) is INVALID_REQUEST
	// before any field is judged, so a body's code never depends on how
	// far a decoder read.
	if !json.Valid(raw) {
		return app.Errorf(app.KindInvalid, app.CodeInvalidRequest, "the body is not valid JSON: it must be exactly one JSON object")
	}
	if err := checkKeys(raw, fieldsOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			// checkKeys let no unknown key through; kept as a backstop.
			return app.Errorf(app.KindInvalid, app.CodeUnknownField, "field %s is not accepted; prices, amounts, statuses and owners are decided by the server", name)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			code, ok := fieldCodes[te.Field]
			if !ok {
				code = app.CodeInvalidRequest
			}
			return app.Errorf(app.KindInvalid, code, "field %q must be a JSON %s", te.Field, te.Type.Kind())
		}
		return app.Errorf(app.KindInvalid, app.CodeInvalidRequest, "the body is not a valid JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return app.Errorf(app.KindInvalid, app.CodeInvalidRequest, "the body must hold exactly one JSON object")
	}
	return nil
}

// requestFields caches each request type's JSON field names.
var requestFields sync.Map // reflect.Type -> map[string]bool

// fieldsOf returns the JSON names of the fields of the struct v points to.
func fieldsOf(v any) map[string]bool {
	t := reflect.TypeOf(v).Elem()
	if f, ok := requestFields.Load(t); ok {
		return f.(map[string]bool)
	}
	names := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names[name] = true
	}
	requestFields.Store(t, names)
	return names
}

// checkKeys fails unless raw is a JSON object whose keys each name one of
// fields exactly, none twice. A key named twice, also in another case, is
// INVALID_REQUEST wherever the copies stand (any parser that folds case, as
// encoding/json does, would read them as one field); only then is a key
// that is not a field UNKNOWN_FIELD.
func checkKeys(raw []byte, fields map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return app.Errorf(app.KindInvalid, app.CodeInvalidRequest, "the body must be a JSON object")
	}
	var keys []string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return app.Errorf(app.KindInvalid, app.CodeInvalidRequest, "the body is not a valid JSON object")
		}
		key, _ := tok.(string)
		if seen[foldKey(key)] {
			return app.Errorf(app.KindInvalid, app.CodeInvalidRequest, "field %q appears twice", key)
		}
		seen[foldKey(key)] = true
		keys = append(keys, key)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return app.Errorf(app.KindInvalid, app.CodeInvalidRequest, "the body is not a valid JSON object")
		}
	}
	for _, key := range keys {
		if !fields[key] {
			return app.Errorf(app.KindInvalid, app.CodeUnknownField, "field %q is not accepted (names are case-sensitive); prices, amounts, statuses and owners are decided by the server", key)
		}
	}
	return nil
}

// foldKey maps every rune to the smallest rune of its case-folding set, as
// encoding/json does, so two keys fold alike exactly when it would assign
// them to the same field.
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

func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &httpError{status: http.StatusRequestEntityTooLarge, code: app.CodeBodyTooLarge, msg: fmt.Sprintf("the body is over the limit of %d bytes", mbe.Limit)}
	}
	return app.Errorf(app.KindInvalid, app.CodeInvalidRequest, "the body could not be read")
}

// statusRecorder remembers the status for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// readBody is io.ReadAll with the buffer sized from Content-Length (capped
// at limit) up front: one byte more than the body, so the body and the EOF
// after it are read without regrowing. A wrong Content-Length only costs a
// regrowth, as in io.ReadAll.
func readBody(r io.Reader, contentLength, limit int64) ([]byte, error) {
	size := int64(512)
	if contentLength > 0 {
		size = min(contentLength, limit) + 1
	}
	b := make([]byte, 0, size)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // let append pick the growth
		}
	}
}
