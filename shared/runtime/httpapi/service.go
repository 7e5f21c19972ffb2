package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
)

// Service mode's routes: the signed server API under /v1/ and the
// operator's app administration under /admin/apps.
const (
	PathServerAPI = "/v1/"
	PathAdminApps = "/admin/apps"
)

// Headers of a signed server request.
const (
	HeaderKeyID     = "X-Payfn-Key-Id"
	HeaderTimestamp = "X-Payfn-Timestamp"
	HeaderNonce     = "X-Payfn-Nonce"
	HeaderSignature = "X-Payfn-Signature"
	HeaderAdminKey  = "X-Payfn-Admin-Key"
)

// MaxServerBody bounds a server-API request: a product or an order with a
// 1 KiB attach fits many times over.
const MaxServerBody = 16 << 10

func init() {
	for k, v := range map[string]string{
		"buyer":         app.CodeInvalidBuyer,
		"attach":        app.CodeInvalidAttach,
		"channel":       app.CodeInvalidChannel,
		"payer_openid":  app.CodeInvalidPayer,
		"wechat_appid":  app.CodeInvalidWeChatAppID,
		"refund_id":     app.CodeInvalidRefundID,
		"title":         app.CodeInvalidTitle,
		"price_fen":     app.CodeInvalidPrice,
		"summary":       app.CodeInvalidText,
		"description":   app.CodeInvalidText,
		"image":         app.CodeInvalidText,
		"active":        app.CodeInvalidRequest,
		"app_id":        app.CodeInvalidAppID,
		"name":          app.CodeInvalidName,
		"merchant":      app.CodeInvalidMerchant,
		"wechat_appids": app.CodeInvalidWeChatAppIDs,
		"channels":      app.CodeInvalidChannels,
		"client_ip":     app.CodeInvalidClientIP,
		"return_url":    app.CodeInvalidReturnURL,
		"quit_url":      app.CodeInvalidQuitURL,
		"status":        app.CodeInvalidStatus,
		"url":           app.CodeInvalidURL,
		"events":        app.CodeInvalidEvents,
		"overlap_hours": app.CodeInvalidOverlap,
		"split":         app.CodeInvalidSplit,
		"remove_split":  app.CodeInvalidRequest,
	} {
		fieldCodes[k] = v
	}
}

// route is one method and path pattern; {x} segments are captured.
type route struct {
	method, pattern string
	fn              func(w http.ResponseWriter, r *http.Request, p params) error
}

type params map[string]string

// match finds the route for r: its handler, or the methods the path allows.
func match(routes []route, method, path string) (route, params, []string) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var allow []string
	for _, rt := range routes {
		want := strings.Split(strings.Trim(rt.pattern, "/"), "/")
		if len(want) != len(parts) {
			continue
		}
		p := params{}
		ok := true
		for i, w := range want {
			if strings.HasPrefix(w, "{") {
				if parts[i] == "" {
					ok = false
					break
				}
				p[strings.Trim(w, "{}")] = parts[i]
			} else if w != parts[i] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if rt.method == method {
			return rt, p, nil
		}
		allow = append(allow, rt.method)
	}
	return route{}, nil, allow
}

// serve answers r from routes, after auth has passed for the matched route.
func serve(w http.ResponseWriter, r *http.Request, routes []route, auth func(r *http.Request, body []byte) error) error {
	rt, p, allow := match(routes, r.Method, r.URL.Path)
	if rt.fn == nil {
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			return &httpError{status: http.StatusMethodNotAllowed, code: app.CodeMethodNotAllowed, msg: "use " + strings.Join(allow, " or ")}
		}
		return &httpError{status: http.StatusNotFound, code: app.CodeNotFound, msg: "no route answers at this path"}
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, MaxServerBody), r.ContentLength, MaxServerBody)
	if err != nil {
		return bodyError(err)
	}
	if r.Method == http.MethodGet || r.Method == http.MethodDelete {
		if len(body) > 0 {
			return app.Errorf(app.KindInvalid, app.CodeInvalidRequest, "a %s request has no body", r.Method)
		}
	} else if len(body) > 0 {
		// A body must be JSON; routes that take none (redeliver, rotations)
		// may be sent without one, and without a type.
		if err := checkJSONContentType(r); err != nil {
			return err
		}
	}
	if r.Method != http.MethodGet && r.URL.RawQuery != "" {
		return app.Errorf(app.KindInvalid, app.CodeUnknownField, "a %s request takes no query parameters", r.Method)
	}
	if err := auth(r, body); err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return rt.fn(w, r, p)
}

// query reads the query parameters r may carry, refusing any other.
func query(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, app.Errorf(app.KindInvalid, app.CodeInvalidRequest, "the query string is malformed")
	}
	for k, v := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return nil, app.Errorf(app.KindInvalid, app.CodeUnknownField, "query parameter %q is not accepted here", k)
		}
		if len(v) > 1 {
			return nil, app.Errorf(app.KindInvalid, app.CodeInvalidRequest, "query parameter %q appears twice", k)
		}
	}
	return q, nil
}

func queryLimit(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100 {
		return 0, app.Errorf(app.KindInvalid, app.CodeInvalidLimit, "limit must be from 1 to 100")
	}
	return n, nil
}

// optionalNumber parses an optional whole-number field.
func optionalNumber(raw json.RawMessage, code, msg string) (*int64, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	n, ok := wholeNumber(raw)
	if !ok {
		return nil, app.Errorf(app.KindInvalid, code, "%s", msg)
	}
	return &n, nil
}

type productRequest struct {
	ProductID   string          `json:"product_id"`
	Title       string          `json:"title"`
	Summary     string          `json:"summary"`
	Description string          `json:"description"`
	Image       string          `json:"image"`
	PriceFen    json.RawMessage `json:"price_fen"`
	Active      *bool           `json:"active"`
	Split       json.RawMessage `json:"split"` // splitField
}

type productPatch struct {
	Title       *string         `json:"title"`
	Summary     *string         `json:"summary"`
	Description *string         `json:"description"`
	Image       *string         `json:"image"`
	PriceFen    json.RawMessage `json:"price_fen"`
	Active      *bool           `json:"active"`
	Split       json.RawMessage `json:"split"` // splitField
	RemoveSplit bool            `json:"remove_split"`
}

// splitField reads a product's split rule (nil when absent or null) as
// strictly as decode reads a body: keys named exactly, none twice, none
// unknown, every value of its type. Anything else is INVALID_SPLIT naming
// the place, so a mistake in the rule is named rather than half read. The
// rule itself is judged by the use case (app.ValidateSplit).
func splitField(raw json.RawMessage) (*order.Split, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	if err := splitKeys("split", raw, fieldsOf(&order.Split{})); err != nil {
		return nil, err
	}
	var rule struct {
		Receivers []json.RawMessage `json:"receivers"`
	}
	if json.Unmarshal(raw, &rule) != nil {
		return nil, splitError("split.receivers must be an array of objects")
	}
	for i, r := range rule.Receivers {
		if err := splitKeys(fmt.Sprintf("split.receivers[%d]", i), r, fieldsOf(&order.Receiver{})); err != nil {
			return nil, err
		}
	}
	var s order.Split
	if err := json.Unmarshal(raw, &s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, splitError("split.%s must be a JSON %s", te.Field, te.Type.Kind())
		}
		return nil, splitError("split is not a split rule")
	}
	return &s, nil
}

// splitKeys checks the keys of one object of a split rule against its
// type's fields, as checkKeys does for a body.
func splitKeys(at string, raw json.RawMessage, fields map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return splitError("%s must be a JSON object", at)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return splitError("%s is not a valid JSON object", at)
		}
		key, _ := tok.(string)
		switch {
		case seen[foldKey(key)]:
			return splitError("%s: field %q appears twice", at, key)
		case !fields[key]:
			return splitError("%s: field %q is not accepted (names are case-sensitive)", at, key)
		}
		seen[foldKey(key)] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return splitError("%s is not a valid JSON object", at)
		}
	}
	return nil
}

func splitError(format string, args ...any) error {
	return app.Errorf(app.KindInvalid, app.CodeInvalidSplit, format, args...)
}

type serviceOrderRequest struct {
	ProductID   string          `json:"product_id"`
	Quantity    json.RawMessage `json:"quantity"`
	RequestID   string          `json:"request_id"`
	Buyer       string          `json:"buyer"`
	Attach      string          `json:"attach"`
	Channel     string          `json:"channel"`
	PayerOpenID string          `json:"payer_openid"`
	WeChatAppID string          `json:"wechat_appid"`
	ClientIP    string          `json:"client_ip"`
	ReturnURL   string          `json:"return_url"`
	QuitURL     string          `json:"quit_url"`
}

type serviceRefundRequest struct {
	RefundID  string          `json:"refund_id"`
	AmountFen json.RawMessage `json:"amount_fen"`
	Reason    string          `json:"reason"`
}

const priceMsg = "price_fen must be a whole number of fen from 1 to 100000000"

// ServerAPI serves the signed server API (every route under /v1/): each
// request is authenticated by its app's key and signature, and reaches only
// that app's products, orders, refunds and events.
func (api *API) ServerAPI() http.Handler {
	return api.handle("serverApi", func(w http.ResponseWriter, r *http.Request, lg *logLine) error {
		var caller order.App
		auth := func(r *http.Request, body []byte) error {
			var err error
			caller, err = api.app.AuthenticateServer(r.Context(), app.ServerRequest{
				KeyID: r.Header.Get(HeaderKeyID), Timestamp: r.Header.Get(HeaderTimestamp), Nonce: r.Header.Get(HeaderNonce),
				Signature: r.Header.Get(HeaderSignature), Method: r.Method, Path: r.URL.RequestURI(), Body: body,
			})
			if err == nil {
				lg.caller = "app:" + caller.ID
			}
			return err
		}
		routes := []route{
			{http.MethodGet, "/v1/products", func(w http.ResponseWriter, r *http.Request, p params) error {
				if _, err := query(r); err != nil {
					return err
				}
				ps, err := api.app.ListProducts(r.Context(), caller.ID)
				if err != nil {
					return err
				}
				return writeJSON(w, http.StatusOK, map[string]any{"products": ps})
			}},
			{http.MethodPost, "/v1/products", func(w http.ResponseWriter, r *http.Request, p params) error {
				var req productRequest
				if err := decode(r, &req); err != nil {
					return err
				}
				price, ok := wholeNumber(req.PriceFen)
				if !ok {
					return app.Errorf(app.KindInvalid, app.CodeInvalidPrice, priceMsg)
				}
				split, err := splitField(req.Split)
				if err != nil {
					return err
				}
				pr, err := api.app.CreateProduct(r.Context(), caller.ID, app.ProductInput{ID: req.ProductID, Title: req.Title,
					Summary: req.Summary, Description: req.Description, Image: req.Image, PriceFen: price, Active: req.Active, Split: split})
				if err != nil {
					return err
				}
				return writeJSON(w, http.StatusCreated, pr)
			}},
			{http.MethodPatch, "/v1/products/{id}", func(w http.ResponseWriter, r *http.Request, p params) error {
				var req productPatch
				if err := decode(r, &req); err != nil {
					return err
				}
				price, err := optionalNumber(req.PriceFen, app.CodeInvalidPrice, priceMsg)
				if err != nil {
					return err
				}
				split, err := splitField(req.Split)
				if err != nil {
					return err
				}
				pr, err := api.app.UpdateProduct(r.Context(), caller.ID, p["id"], app.ProductUpdate{Title: req.Title, Summary: req.Summary,
					Description: req.Description, Image: req.Image, PriceFen: price, Active: req.Active, Split: split, RemoveSplit: req.RemoveSplit})
				if err != nil {
					return err
				}
				return writeJSON(w, http.StatusOK, pr)
			}},
			{http.MethodPost, "/v1/orders", func(w http.ResponseWriter, r *http.Request, p params) error {
				var req serviceOrderRequest
				if err := decode(r, &req); err != nil {
					return err
				}
				n, ok := wholeNumber(req.Quantity)
				if !ok {
					return app.Errorf(app.KindInvalid, app.CodeInvalidQuantity, "quantity must be a whole number from 1 to 999")
				}
				o, created, err := api.app.CreateServiceOrder(r.Context(), caller, app.ServiceOrderInput{ProductID: req.ProductID, Quantity: n,
					RequestID: req.RequestID, Buyer: req.Buyer, Attach: req.Attach, Channel: req.Channel, PayerOpenID: req.PayerOpenID, WeChatAppID: req.WeChatAppID,
					ClientIP: req.ClientIP, ReturnURL: req.ReturnURL, QuitURL: req.QuitURL})
				if err != nil {
					return err
				}
				lg.orderID = o.OrderID
				status := http.StatusOK
				if created {
					status = http.StatusCreated
				}
				return writeJSON(w, status, o)
			}},
			{http.MethodGet, "/v1/orders/{id}", func(w http.ResponseWriter, r *http.Request, p params) error {
				q, err := query(r, "refresh")
				if err != nil {
					return err
				}
				refresh := false
				switch q.Get("refresh") {
				case "", "false":
				case "true":
					refresh = true
				default:
					return app.Errorf(app.KindInvalid, app.CodeInvalidRequest, "refresh must be true or false")
				}
				lg.orderID = p["id"]
				o, err := api.app.GetServiceOrder(r.Context(), caller.ID, p["id"], refresh)
				if err != nil {
					return err
				}
				return writeJSON(w, http.StatusOK, o)
			}},
			{http.MethodPost, "/v1/orders/{id}/refunds", func(w http.ResponseWriter, r *http.Request, p params) error {
				var req serviceRefundRequest
				if err := decode(r, &req); err != nil {
					return err
				}
				amt, ok := wholeNumber(req.AmountFen)
				if !ok {
					return app.Errorf(app.KindInvalid, app.CodeInvalidAmount, "amount_fen must be a whole number of fen")
				}
				lg.orderID = p["id"]
				ref, created, err := api.app.RefundServiceOrder(r.Context(), caller.ID, p["id"], app.ServiceRefundInput{RefundID: req.RefundID, AmountFen: amt, Reason: req.Reason})
				if err != nil {
					return err
				}
				status := http.StatusOK
				if created {
					status = http.StatusCreated
				}
				return writeJSON(w, status, ref)
			}},
			{http.MethodGet, "/v1/events", func(w http.ResponseWriter, r *http.Request, p params) error {
				return api.listEvents(w, r, caller.ID)
			}},
			{http.MethodGet, "/v1/events/{id}", func(w http.ResponseWriter, r *http.Request, p params) error {
				if _, err := query(r); err != nil {
					return err
				}
				e, err := api.app.GetEvent(r.Context(), caller.ID, p["id"])
				if err != nil {
					return err
				}
				return writeJSON(w, http.StatusOK, e)
			}},
			{http.MethodPost, "/v1/events/{id}/redeliver", func(w http.ResponseWriter, r *http.Request, p params) error {
				return api.redeliver(w, r, caller.ID, p["id"])
			}},
		}
		return serve(w, r, routes, auth)
	})
}

func (api *API) listEvents(w http.ResponseWriter, r *http.Request, appID string) error {
	q, err := query(r, "limit", "cursor", "order_id")
	if err != nil {
		return err
	}
	limit, err := queryLimit(q)
	if err != nil {
		return err
	}
	page, err := api.app.ListEvents(r.Context(), appID, q.Get("order_id"), q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, page)
}

// redeliver takes an empty body or {} and sends the event again now.
func (api *API) redeliver(w http.ResponseWriter, r *http.Request, appID, eventID string) error {
	if err := emptyObject(r); err != nil {
		return err
	}
	e, err := api.app.Redeliver(r.Context(), appID, eventID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

// emptyObject accepts a body that is {} (or nothing at all).
func emptyObject(r *http.Request) error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	var none struct{}
	return decode(r, &none)
}

type appRequest struct {
	AppID        string   `json:"app_id"`
	Name         string   `json:"name"`
	Merchant     string   `json:"merchant"`
	WeChatAppIDs []string `json:"wechat_appids"`
	Channels     []string `json:"channels"`
}

type appPatch struct {
	Name         *string  `json:"name"`
	Status       *string  `json:"status"`
	WeChatAppIDs []string `json:"wechat_appids"`
	Channels     []string `json:"channels"`
}

type overlapRequest struct {
	OverlapHours json.RawMessage `json:"overlap_hours"`
}

type endpointRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

type endpointPatch struct {
	URL    *string  `json:"url"`
	Events []string `json:"events"`
	Status *string  `json:"status"`
}

// overlap reads {overlap_hours} (default 24); an empty body is {}.
func overlap(r *http.Request) (time.Duration, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return 0, bodyError(err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return app.DefaultOverlap, nil
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	var req overlapRequest
	if err := decode(r, &req); err != nil {
		return 0, err
	}
	h, err := optionalNumber(req.OverlapHours, app.CodeInvalidOverlap, "overlap_hours must be a whole number of hours from 0 to 720")
	if err != nil {
		return 0, err
	}
	if h == nil {
		return app.DefaultOverlap, nil
	}
	if *h < 0 || *h > 720 {
		return 0, app.Errorf(app.KindInvalid, app.CodeInvalidOverlap, "overlap_hours must be a whole number of hours from 0 to 720")
	}
	return time.Duration(*h) * time.Hour, nil
}

// AdminApps serves the operator's app administration under /admin/apps,
// with the merchant admin key in X-Payfn-Admin-Key.
func (api *API) AdminApps() http.Handler {
	auth := func(r *http.Request, _ []byte) error { return api.app.AuthenticateAdmin(r.Header.Get(HeaderAdminKey)) }
	routes := []route{
		{http.MethodPost, "/admin/apps", func(w http.ResponseWriter, r *http.Request, p params) error {
			var req appRequest
			if err := decode(r, &req); err != nil {
				return err
			}
			v, key, err := api.app.CreateApp(r.Context(), app.AppInput{ID: req.AppID, Name: req.Name, Merchant: req.Merchant, WeChatAppIDs: req.WeChatAppIDs, Channels: req.Channels})
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusCreated, map[string]any{"app": v, "api_key": key})
		}},
		{http.MethodGet, "/admin/apps", func(w http.ResponseWriter, r *http.Request, p params) error {
			if _, err := query(r); err != nil {
				return err
			}
			vs, err := api.app.ListApps(r.Context())
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusOK, map[string]any{"apps": vs})
		}},
		{http.MethodGet, "/admin/apps/{app}", func(w http.ResponseWriter, r *http.Request, p params) error {
			if _, err := query(r); err != nil {
				return err
			}
			v, err := api.app.GetApp(r.Context(), p["app"])
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusOK, v)
		}},
		{http.MethodPatch, "/admin/apps/{app}", func(w http.ResponseWriter, r *http.Request, p params) error {
			var req appPatch
			if err := decode(r, &req); err != nil {
				return err
			}
			v, err := api.app.UpdateApp(r.Context(), p["app"], app.AppUpdate{Name: req.Name, Status: req.Status, WeChatAppIDs: req.WeChatAppIDs, Channels: req.Channels})
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusOK, v)
		}},
		{http.MethodPost, "/admin/apps/{app}/keys", func(w http.ResponseWriter, r *http.Request, p params) error {
			ov, err := overlap(r)
			if err != nil {
				return err
			}
			v, key, err := api.app.RotateKey(r.Context(), p["app"], ov)
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusCreated, map[string]any{"app": v, "api_key": key})
		}},
		{http.MethodDelete, "/admin/apps/{app}/keys/{key}", func(w http.ResponseWriter, r *http.Request, p params) error {
			if _, err := query(r); err != nil {
				return err
			}
			v, err := api.app.RevokeKey(r.Context(), p["app"], p["key"])
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusOK, v)
		}},
		{http.MethodPost, "/admin/apps/{app}/endpoints", func(w http.ResponseWriter, r *http.Request, p params) error {
			var req endpointRequest
			if err := decode(r, &req); err != nil {
				return err
			}
			ep, secret, err := api.app.AddEndpoint(r.Context(), p["app"], app.EndpointInput{URL: req.URL, Events: req.Events})
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusCreated, map[string]any{"endpoint": ep, "secret": secret.Secret})
		}},
		{http.MethodPatch, "/admin/apps/{app}/endpoints/{ep}", func(w http.ResponseWriter, r *http.Request, p params) error {
			var req endpointPatch
			if err := decode(r, &req); err != nil {
				return err
			}
			ep, err := api.app.UpdateEndpoint(r.Context(), p["app"], p["ep"], app.EndpointUpdate{URL: req.URL, Events: req.Events, Status: req.Status})
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusOK, ep)
		}},
		{http.MethodPost, "/admin/apps/{app}/endpoints/{ep}/secret", func(w http.ResponseWriter, r *http.Request, p params) error {
			ov, err := overlap(r)
			if err != nil {
				return err
			}
			ep, secret, err := api.app.RotateEndpointSecret(r.Context(), p["app"], p["ep"], ov)
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusCreated, map[string]any{"endpoint": ep, "secret": secret.Secret})
		}},
		{http.MethodGet, "/admin/apps/{app}/events", func(w http.ResponseWriter, r *http.Request, p params) error {
			if _, err := api.app.GetApp(r.Context(), p["app"]); err != nil {
				return err
			}
			return api.listEvents(w, r, p["app"])
		}},
		{http.MethodGet, "/admin/apps/{app}/events/{evt}", func(w http.ResponseWriter, r *http.Request, p params) error {
			if _, err := query(r); err != nil {
				return err
			}
			e, err := api.app.GetEvent(r.Context(), p["app"], p["evt"])
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusOK, e)
		}},
		{http.MethodPost, "/admin/apps/{app}/events/{evt}/redeliver", func(w http.ResponseWriter, r *http.Request, p params) error {
			return api.redeliver(w, r, p["app"], p["evt"])
		}},
	}
	return api.handle("adminApps", func(w http.ResponseWriter, r *http.Request, lg *logLine) error {
		return serve(w, r, routes, auth)
	})
}
