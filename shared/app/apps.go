package app

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/webhook"
)

// Service-mode error codes: apps and their credentials.
const (
	CodeInvalidAppID        = "INVALID_APP_ID"
	CodeInvalidName         = "INVALID_NAME"
	CodeInvalidWeChatAppIDs = "INVALID_WECHAT_APPIDS"
	CodeInvalidChannels     = "INVALID_CHANNELS"
	CodeInvalidMerchant     = "INVALID_MERCHANT"
	CodeInvalidStatus       = "INVALID_STATUS"
	CodeInvalidURL          = "INVALID_URL"
	CodeInvalidEvents       = "INVALID_EVENTS"
	CodeInvalidOverlap      = "INVALID_OVERLAP"
	CodeAppExists           = "APP_EXISTS"
	CodeAppNotFound         = "APP_NOT_FOUND"
	CodeKeyNotFound         = "KEY_NOT_FOUND"
	CodeEndpointNotFound    = "ENDPOINT_NOT_FOUND"
	CodeTooManyKeys         = "TOO_MANY_KEYS"
	CodeTooManyEndpoints    = "TOO_MANY_ENDPOINTS"
	CodeServiceNotEnabled   = "SERVICE_MODE_NOT_CONFIGURED"

	// Signed server requests: every failure is 401 and changes nothing.
	CodeInvalidSignature = "INVALID_SIGNATURE"
	CodeRequestExpired   = "REQUEST_EXPIRED"
	CodeNonceReused      = "NONCE_REUSED"
	CodeAppDisabled      = "APP_DISABLED"
)

// MerchantDefault names the merchant configured in the deployment's
// WECHATPAY_* settings. Apps reference merchants by name; their keys stay in
// the secret store and no API returns them.
const MerchantDefault = "default"

// Limits on an app's credentials.
const (
	maxKeys         = 2 // two valid at once: the overlap of a rotation
	maxEndpoints    = 10
	DefaultOverlap  = 24 * time.Hour
	maxOverlap      = 30 * 24 * time.Hour
	requestWindow   = 5 * time.Minute
	nonceLifetime   = 2*requestWindow + time.Minute
	maxNameLength   = 80
	maxEndpointURLs = 2048
)

var (
	wechatAppIDPattern = regexp.MustCompile(`^wx[0-9A-Za-z]{16}$`)
	keyIDPattern       = regexp.MustCompile(`^ak_([a-z][a-z0-9]{1,15})_[0-9a-z]{16}$`)
	nonceHeaderPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)
	timestampPattern   = regexp.MustCompile(`^[0-9]{1,12}$`)
	signaturePattern   = regexp.MustCompile(`^v1=[0-9a-f]{64}$`)
)

// serviceKeys derives what service mode needs from the deployment's service
// key: each API key's secret (so the store holds only a hash of it) and the
// key that seals webhook secrets at rest.
type serviceKeys struct {
	master []byte
	seal   cipher.AEAD
	// prev is the previous service key during its rotation: API keys
	// derived from it still authenticate and secrets it sealed still open.
	prev *serviceKeys
}

func newServiceKeys(master []byte) (*serviceKeys, error) {
	if len(master) < 32 {
		return nil, fmt.Errorf("the service key is %d bytes; it needs at least 32", len(master))
	}
	k := sha256.Sum256(append([]byte("payfn webhook secret sealing\x00"), master...))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, fmt.Errorf("service key: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("service key: %w", err)
	}
	return &serviceKeys{master: master, seal: gcm}, nil
}

// keySecret is the secret of API key keyID. It is derived, never stored:
// whoever reads the store learns only its hash.
func (k *serviceKeys) keySecret(keyID string) string {
	m := hmac.New(sha256.New, k.master)
	m.Write([]byte("payfn api key\x00" + keyID))
	return "sk_" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (k *serviceKeys) sealSecret(secret string) (string, error) {
	nonce := make([]byte, k.seal.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal webhook secret: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k.seal.Seal(nonce, nonce, []byte(secret), nil)), nil
}

func (k *serviceKeys) openSecret(sealed string) (string, error) {
	plain, err := k.open1(sealed)
	if err != nil && k.prev != nil {
		if p, perr := k.prev.open1(sealed); perr == nil {
			return p, nil
		}
	}
	return plain, err
}

// keyMatch returns the secret of API key keyID if hash is its stored hash,
// under the current service key or, during a rotation, the previous one.
func (k *serviceKeys) keyMatch(keyID, hash string) (string, bool) {
	for kk := k; kk != nil; kk = kk.prev {
		secret := kk.keySecret(keyID)
		if subtle.ConstantTimeCompare([]byte(order.HashSecret(secret)), []byte(hash)) == 1 {
			return secret, true
		}
	}
	return "", false
}

func (k *serviceKeys) open1(sealed string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < k.seal.NonceSize() {
		return "", errors.New("open webhook secret: malformed")
	}
	n := k.seal.NonceSize()
	plain, err := k.seal.Open(nil, b[:n], b[n:], nil)
	if err != nil {
		return "", errors.New("open webhook secret: it was sealed with another service key")
	}
	return string(plain), nil
}

// randomID is n characters of [0-9a-z].
func randomID(n int) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	rand.Read(b) // never fails
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func (a *App) service() (*serviceKeys, error) {
	if a.svc == nil {
		return nil, Errorf(KindUnavailable, CodeServiceNotEnabled, "service mode is not configured here: set PAYFN_SERVICE_KEY")
	}
	return a.svc, nil
}

// AppInput is an operator's description of a new app.
type AppInput struct {
	ID           string
	Name         string
	Merchant     string   // default MerchantDefault
	WeChatAppIDs []string // default the channel's default appid
	Channels     []string // default wechat_jsapi
}

// NewCredential is a secret shown once, when it is made.
type NewCredential struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// AppView is an app as the operator sees it: never a secret or a hash.
type AppView struct {
	order.App
	Keys      []order.APIKey   `json:"keys"`
	Endpoints []order.Endpoint `json:"endpoints"`
}

func viewApp(x order.App) AppView {
	x.Channels = x.EnabledChannels()
	return AppView{App: x, Keys: x.SortedKeys(), Endpoints: x.SortedEndpoints()}
}

// CreateApp registers a client app with one API key, shown once.
// Errors: INVALID_APP_ID, INVALID_NAME, INVALID_MERCHANT,
// INVALID_WECHAT_APPIDS, INVALID_CHANNELS, APP_EXISTS, SERVICE_MODE_NOT_CONFIGURED,
// STORE_UNAVAILABLE.
func (a *App) CreateApp(ctx context.Context, in AppInput) (AppView, NewCredential, error) {
	svc, err := a.service()
	if err != nil {
		return AppView{}, NewCredential{}, err
	}
	if !order.AppIDPattern.MatchString(in.ID) {
		return AppView{}, NewCredential{}, Errorf(KindInvalid, CodeInvalidAppID, "id must be 2-16 characters of a-z 0-9, starting with a letter")
	}
	if err := checkName(in.Name); err != nil {
		return AppView{}, NewCredential{}, err
	}
	if in.Merchant == "" {
		in.Merchant = MerchantDefault
	}
	if in.Merchant != MerchantDefault {
		return AppView{}, NewCredential{}, Errorf(KindInvalid, CodeInvalidMerchant, "merchant must name a merchant configured here: %q", MerchantDefault)
	}
	ids, err := a.checkWeChatAppIDs(in.WeChatAppIDs)
	if err != nil {
		return AppView{}, NewCredential{}, err
	}
	channels, err := checkChannels(in.Channels, true)
	if err != nil {
		return AppView{}, NewCredential{}, err
	}
	now := a.now().UTC().Truncate(time.Millisecond)
	x := order.App{ID: in.ID, Name: in.Name, Status: order.AppActive, Merchant: in.Merchant, WeChatAppIDs: ids, Channels: channels,
		Keys: map[string]order.APIKey{}, Endpoints: map[string]order.Endpoint{}, CreatedAt: now, UpdatedAt: now}
	cred := newKey(svc, x.ID, now)
	x.Keys[cred.ID] = order.APIKey{ID: cred.ID, SecretHash: order.HashSecret(cred.Secret), CreatedAt: now}
	err = a.store.InsertApp(ctx, x)
	if errors.Is(err, order.ErrDuplicate) {
		return AppView{}, NewCredential{}, Errorf(KindConflict, CodeAppExists, "an app with id %q exists", in.ID)
	} else if err != nil {
		return AppView{}, NewCredential{}, storeError("insert app", err)
	}
	a.log.InfoContext(ctx, "app created", "app_id", x.ID, "key_id", cred.ID)
	return viewApp(x), cred, nil
}

func newKey(svc *serviceKeys, appID string, now time.Time) NewCredential {
	id := "ak_" + appID + "_" + randomID(16)
	return NewCredential{ID: id, Secret: svc.keySecret(id)}
}

func checkName(name string) error {
	if strings.TrimSpace(name) == "" || utf8.RuneCountInString(name) > maxNameLength || !utf8.ValidString(name) {
		return Errorf(KindInvalid, CodeInvalidName, "name must be 1-%d characters", maxNameLength)
	}
	return nil
}

// checkWeChatAppIDs accepts appids bound to the configured merchant.
func (a *App) checkWeChatAppIDs(ids []string) ([]string, error) {
	bound := a.bound
	if a.channel != nil {
		bound = a.channel.AppIDs()
	}
	if len(ids) == 0 {
		if len(bound) == 0 {
			return nil, Errorf(KindInvalid, CodeInvalidWeChatAppIDs, "wechat_appids is required: no merchant appid is configured here")
		}
		return []string{bound[0]}, nil
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if !wechatAppIDPattern.MatchString(id) || seen[id] {
			return nil, Errorf(KindInvalid, CodeInvalidWeChatAppIDs, "wechat_appids must be distinct WeChat appids (wx and 16 characters)")
		}
		seen[id] = true
		if bound != nil && !contains(bound, id) {
			return nil, Errorf(KindInvalid, CodeInvalidWeChatAppIDs, "appid %s is not bound to the merchant here (WECHATPAY_APPID, WECHATPAY_EXTRA_APPIDS)", id)
		}
	}
	return ids, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// loadApp is an app by id, or APP_NOT_FOUND.
func (a *App) loadApp(ctx context.Context, id string) (order.App, error) {
	if !order.AppIDPattern.MatchString(id) {
		return order.App{}, Errorf(KindNotFound, CodeAppNotFound, "no app %q", id)
	}
	x, err := a.store.App(ctx, id)
	if errors.Is(err, order.ErrNotFound) {
		return order.App{}, Errorf(KindNotFound, CodeAppNotFound, "no app %q", id)
	} else if err != nil {
		return order.App{}, storeError("load app", err)
	}
	if x.Keys == nil {
		x.Keys = map[string]order.APIKey{}
	}
	if x.Endpoints == nil {
		x.Endpoints = map[string]order.Endpoint{}
	}
	return x, nil
}

// GetApp returns an app as the operator sees it.
// Errors: APP_NOT_FOUND, STORE_UNAVAILABLE.
func (a *App) GetApp(ctx context.Context, id string) (AppView, error) {
	x, err := a.loadApp(ctx, id)
	if err != nil {
		return AppView{}, err
	}
	return viewApp(x), nil
}

// ListApps returns every app.
// Errors: STORE_UNAVAILABLE.
func (a *App) ListApps(ctx context.Context) ([]AppView, error) {
	xs, err := a.store.Apps(ctx)
	if err != nil {
		return nil, storeError("list apps", err)
	}
	out := make([]AppView, len(xs))
	for i, x := range xs {
		out[i] = viewApp(x)
	}
	return out, nil
}

// AppUpdate changes an app; nil fields stay as they are.
type AppUpdate struct {
	Name         *string
	Status       *string
	WeChatAppIDs []string // nil: unchanged
	Channels     []string // nil: unchanged
}

// UpdateApp renames, enables or disables an app, or changes its appids.
// Errors: APP_NOT_FOUND, INVALID_NAME, INVALID_STATUS, INVALID_WECHAT_APPIDS,
// INVALID_CHANNELS, STORE_UNAVAILABLE.
func (a *App) UpdateApp(ctx context.Context, id string, up AppUpdate) (AppView, error) {
	x, err := a.loadApp(ctx, id)
	if err != nil {
		return AppView{}, err
	}
	if up.Name != nil {
		if err := checkName(*up.Name); err != nil {
			return AppView{}, err
		}
		x.Name = *up.Name
	}
	if up.Status != nil {
		st := order.AppStatus(*up.Status)
		if st != order.AppActive && st != order.AppDisabled {
			return AppView{}, Errorf(KindInvalid, CodeInvalidStatus, "status must be active or disabled")
		}
		x.Status = st
	}
	if up.WeChatAppIDs != nil {
		if len(up.WeChatAppIDs) == 0 {
			return AppView{}, Errorf(KindInvalid, CodeInvalidWeChatAppIDs, "wechat_appids cannot be empty")
		}
		if x.WeChatAppIDs, err = a.checkWeChatAppIDs(up.WeChatAppIDs); err != nil {
			return AppView{}, err
		}
	}
	if up.Channels != nil {
		if x.Channels, err = checkChannels(up.Channels, false); err != nil {
			return AppView{}, err
		}
	}
	return a.saveApp(ctx, x, "app updated")
}

// checkChannels accepts distinct known channel names; none is the default
// channel only when absent is allowed. A channel need not be configured
// here yet: the app may enable it ahead of the deployment, and its orders
// are refused with CHANNEL_NOT_ENABLED until then.
func checkChannels(names []string, absentOK bool) ([]string, error) {
	if len(names) == 0 {
		if absentOK {
			return []string{ChannelWeChatJSAPI}, nil
		}
		return nil, Errorf(KindInvalid, CodeInvalidChannels, "channels cannot be empty")
	}
	seen := map[string]bool{}
	for _, n := range names {
		if !contains(KnownChannels, n) || seen[n] {
			return nil, Errorf(KindInvalid, CodeInvalidChannels, "channels must be distinct names among %s", strings.Join(KnownChannels, ", "))
		}
		seen[n] = true
	}
	return slices.Clone(names), nil
}

func (a *App) saveApp(ctx context.Context, x order.App, what string) (AppView, error) {
	x.UpdatedAt = a.now().UTC().Truncate(time.Millisecond)
	if err := a.store.ReplaceApp(ctx, x); err != nil {
		return AppView{}, storeError("save app", err)
	}
	a.log.InfoContext(ctx, what, "app_id", x.ID)
	return viewApp(x), nil
}

// RotateKey makes a new API key for the app and lets the app's other keys
// expire after overlap, so its servers switch without a gap. Expired keys
// are dropped; at most two are valid at once.
// Errors: APP_NOT_FOUND, INVALID_OVERLAP, TOO_MANY_KEYS,
// SERVICE_MODE_NOT_CONFIGURED, STORE_UNAVAILABLE.
func (a *App) RotateKey(ctx context.Context, appID string, overlap time.Duration) (AppView, NewCredential, error) {
	svc, err := a.service()
	if err != nil {
		return AppView{}, NewCredential{}, err
	}
	if overlap < 0 || overlap > maxOverlap {
		return AppView{}, NewCredential{}, Errorf(KindInvalid, CodeInvalidOverlap, "overlap must be from 0 to %d hours", int(maxOverlap.Hours()))
	}
	x, err := a.loadApp(ctx, appID)
	if err != nil {
		return AppView{}, NewCredential{}, err
	}
	now := a.now().UTC().Truncate(time.Millisecond)
	until := now.Add(overlap)
	for id, k := range x.Keys {
		switch {
		case !k.ValidAt(now):
			delete(x.Keys, id)
		case k.ExpiresAt == nil || k.ExpiresAt.After(until):
			k.ExpiresAt = &until
			x.Keys[id] = k
		}
	}
	if overlap == 0 {
		for id := range x.Keys {
			delete(x.Keys, id)
		}
	}
	if len(x.Keys) >= maxKeys {
		return AppView{}, NewCredential{}, Errorf(KindConflict, CodeTooManyKeys, "app %s already has %d keys in their overlap; revoke one first", appID, len(x.Keys))
	}
	cred := newKey(svc, x.ID, now)
	x.Keys[cred.ID] = order.APIKey{ID: cred.ID, SecretHash: order.HashSecret(cred.Secret), CreatedAt: now}
	v, err := a.saveApp(ctx, x, "api key rotated")
	return v, cred, err
}

// RevokeKey removes one API key at once.
// Errors: APP_NOT_FOUND, KEY_NOT_FOUND, STORE_UNAVAILABLE.
func (a *App) RevokeKey(ctx context.Context, appID, keyID string) (AppView, error) {
	x, err := a.loadApp(ctx, appID)
	if err != nil {
		return AppView{}, err
	}
	if _, ok := x.Keys[keyID]; !ok {
		return AppView{}, Errorf(KindNotFound, CodeKeyNotFound, "app %s has no key %q", appID, keyID)
	}
	delete(x.Keys, keyID)
	return a.saveApp(ctx, x, "api key revoked")
}

// EndpointInput is a webhook endpoint to add.
type EndpointInput struct {
	URL    string
	Events []string // empty: every type
}

func (a *App) checkEndpoint(in EndpointInput) error {
	if len(in.URL) > maxEndpointURLs {
		return Errorf(KindInvalid, CodeInvalidURL, "url is at most %d characters", maxEndpointURLs)
	}
	if err := webhook.CheckURL(in.URL, a.hooks.AllowPrivate); err != nil {
		return &Error{Kind: KindInvalid, Code: CodeInvalidURL, Message: "url must be an https URL of a public host: " + err.Error(), Err: err}
	}
	for _, t := range in.Events {
		if !contains(order.EventTypes, t) {
			return Errorf(KindInvalid, CodeInvalidEvents, "events must be among %s", strings.Join(order.EventTypes, ", "))
		}
	}
	return nil
}

// AddEndpoint registers a webhook endpoint and returns its signing secret,
// shown once.
// Errors: APP_NOT_FOUND, INVALID_URL, INVALID_EVENTS, TOO_MANY_ENDPOINTS,
// SERVICE_MODE_NOT_CONFIGURED, STORE_UNAVAILABLE.
func (a *App) AddEndpoint(ctx context.Context, appID string, in EndpointInput) (order.Endpoint, NewCredential, error) {
	svc, err := a.service()
	if err != nil {
		return order.Endpoint{}, NewCredential{}, err
	}
	if err := a.checkEndpoint(in); err != nil {
		return order.Endpoint{}, NewCredential{}, err
	}
	x, err := a.loadApp(ctx, appID)
	if err != nil {
		return order.Endpoint{}, NewCredential{}, err
	}
	if len(x.Endpoints) >= maxEndpoints {
		return order.Endpoint{}, NewCredential{}, Errorf(KindConflict, CodeTooManyEndpoints, "app %s has %d endpoints, the most allowed", appID, maxEndpoints)
	}
	secret, sealed, err := newEndpointSecret(svc)
	if err != nil {
		return order.Endpoint{}, NewCredential{}, err
	}
	now := a.now().UTC().Truncate(time.Millisecond)
	ep := order.Endpoint{ID: "ep_" + randomID(16), URL: in.URL, Events: in.Events, Status: order.EndpointEnabled,
		Secrets: []order.EndpointSecret{{Sealed: sealed, CreatedAt: now}}, CreatedAt: now}
	x.Endpoints[ep.ID] = ep
	if _, err := a.saveApp(ctx, x, "webhook endpoint added"); err != nil {
		return order.Endpoint{}, NewCredential{}, err
	}
	return ep, NewCredential{ID: ep.ID, Secret: secret}, nil
}

func newEndpointSecret(svc *serviceKeys) (secret, sealed string, err error) {
	secret, err = webhook.NewSecret()
	if err != nil {
		return "", "", fmt.Errorf("new webhook secret: %w", err)
	}
	sealed, err = svc.sealSecret(secret)
	return secret, sealed, err
}

// EndpointUpdate changes an endpoint; nil fields stay as they are.
type EndpointUpdate struct {
	URL    *string
	Status *string
	Events []string // nil: unchanged
}

// UpdateEndpoint changes an endpoint's URL, events or status (an operator
// enables one the dispatcher disabled after a 410).
// Errors: APP_NOT_FOUND, ENDPOINT_NOT_FOUND, INVALID_URL, INVALID_EVENTS,
// INVALID_STATUS, STORE_UNAVAILABLE.
func (a *App) UpdateEndpoint(ctx context.Context, appID, endpointID string, up EndpointUpdate) (order.Endpoint, error) {
	x, ep, err := a.loadEndpoint(ctx, appID, endpointID)
	if err != nil {
		return order.Endpoint{}, err
	}
	in := EndpointInput{URL: ep.URL, Events: ep.Events}
	if up.URL != nil {
		in.URL = *up.URL
	}
	if up.Events != nil {
		in.Events = up.Events
	}
	if err := a.checkEndpoint(in); err != nil {
		return order.Endpoint{}, err
	}
	ep.URL, ep.Events = in.URL, in.Events
	if up.Status != nil {
		st := order.EndpointStatus(*up.Status)
		if st != order.EndpointEnabled && st != order.EndpointDisabled {
			return order.Endpoint{}, Errorf(KindInvalid, CodeInvalidStatus, "status must be enabled or disabled")
		}
		ep.Status, ep.Reason = st, ""
		if st == order.EndpointDisabled {
			ep.Reason = "disabled by the operator"
		}
	}
	x.Endpoints[ep.ID] = ep
	if _, err := a.saveApp(ctx, x, "webhook endpoint updated"); err != nil {
		return order.Endpoint{}, err
	}
	return ep, nil
}

func (a *App) loadEndpoint(ctx context.Context, appID, endpointID string) (order.App, order.Endpoint, error) {
	x, err := a.loadApp(ctx, appID)
	if err != nil {
		return order.App{}, order.Endpoint{}, err
	}
	ep, ok := x.Endpoints[endpointID]
	if !ok {
		return order.App{}, order.Endpoint{}, Errorf(KindNotFound, CodeEndpointNotFound, "app %s has no endpoint %q", appID, endpointID)
	}
	return x, ep, nil
}

// RotateEndpointSecret gives an endpoint a new signing secret, shown once.
// For overlap the previous one stays valid and deliveries carry both
// signatures, so the receiver switches without a gap.
// Errors: APP_NOT_FOUND, ENDPOINT_NOT_FOUND, INVALID_OVERLAP,
// SERVICE_MODE_NOT_CONFIGURED, STORE_UNAVAILABLE.
func (a *App) RotateEndpointSecret(ctx context.Context, appID, endpointID string, overlap time.Duration) (order.Endpoint, NewCredential, error) {
	svc, err := a.service()
	if err != nil {
		return order.Endpoint{}, NewCredential{}, err
	}
	if overlap < 0 || overlap > maxOverlap {
		return order.Endpoint{}, NewCredential{}, Errorf(KindInvalid, CodeInvalidOverlap, "overlap must be from 0 to %d hours", int(maxOverlap.Hours()))
	}
	x, ep, err := a.loadEndpoint(ctx, appID, endpointID)
	if err != nil {
		return order.Endpoint{}, NewCredential{}, err
	}
	secret, sealed, err := newEndpointSecret(svc)
	if err != nil {
		return order.Endpoint{}, NewCredential{}, err
	}
	now := a.now().UTC().Truncate(time.Millisecond)
	secrets := []order.EndpointSecret{{Sealed: sealed, CreatedAt: now}}
	if overlap > 0 && len(ep.Secrets) > 0 && ep.Secrets[0].ExpiresAt == nil {
		prev := ep.Secrets[0]
		until := now.Add(overlap)
		prev.ExpiresAt = &until
		secrets = append(secrets, prev)
	}
	ep.Secrets = secrets
	x.Endpoints[ep.ID] = ep
	if _, err := a.saveApp(ctx, x, "webhook secret rotated"); err != nil {
		return order.Endpoint{}, NewCredential{}, err
	}
	return ep, NewCredential{ID: ep.ID, Secret: secret}, nil
}

// ServerRequest is what a signed server-API request says about itself.
type ServerRequest struct {
	KeyID     string // X-Payfn-Key-Id
	Timestamp string // X-Payfn-Timestamp, Unix seconds
	Nonce     string // X-Payfn-Nonce
	Signature string // X-Payfn-Signature, "v1=" and hex HMAC-SHA256
	Method    string
	Path      string // the request URI: path and query, as sent
	Body      []byte
}

// StringToSign is what a server request's signature covers: the method,
// the path with its query, the timestamp, the nonce and the exact body.
func StringToSign(method, path, timestamp, nonce string, body []byte) []byte {
	b := make([]byte, 0, 64+len(path)+len(body))
	b = append(b, "PAYFN-HMAC-SHA256\n"...)
	b = append(b, strings.ToUpper(method)...)
	b = append(b, '\n')
	b = append(b, path...)
	b = append(b, '\n')
	b = append(b, timestamp...)
	b = append(b, '\n')
	b = append(b, nonce...)
	b = append(b, '\n')
	return append(b, body...)
}

// SignServerRequest is the X-Payfn-Signature value for a request.
func SignServerRequest(secret, method, path, timestamp, nonce string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(StringToSign(method, path, timestamp, nonce, body))
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// AuthenticateServer checks a signed server-API request and returns the
// app it speaks for. The nonce is spent only once everything else checks
// out, so a forged request cannot burn a real one.
// Errors (all 401): INVALID_SIGNATURE, REQUEST_EXPIRED, NONCE_REUSED,
// APP_DISABLED; SERVICE_MODE_NOT_CONFIGURED, STORE_UNAVAILABLE.
func (a *App) AuthenticateServer(ctx context.Context, r ServerRequest) (order.App, error) {
	svc, err := a.service()
	if err != nil {
		return order.App{}, err
	}
	bad := func(format string, args ...any) (order.App, error) {
		return order.App{}, Errorf(KindUnauthenticated, CodeInvalidSignature, format, args...)
	}
	m := keyIDPattern.FindStringSubmatch(r.KeyID)
	switch {
	case m == nil:
		return bad("send X-Payfn-Key-Id with one of the app's API key ids")
	case !timestampPattern.MatchString(r.Timestamp):
		return bad("send X-Payfn-Timestamp as Unix seconds")
	case !nonceHeaderPattern.MatchString(r.Nonce):
		return bad("send X-Payfn-Nonce: 16-64 characters of A-Z a-z 0-9 _ -, new for every request")
	case !signaturePattern.MatchString(r.Signature):
		return bad("send X-Payfn-Signature: v1= and the lowercase hex HMAC-SHA256 of the string to sign")
	}
	now := a.now()
	sec, _ := strconv.ParseInt(r.Timestamp, 10, 64)
	if d := now.Sub(time.Unix(sec, 0)); d > requestWindow || d < -requestWindow {
		return order.App{}, Errorf(KindUnauthenticated, CodeRequestExpired, "the request timestamp is more than 5 minutes from the server's clock; sign it again")
	}
	x, err := a.store.App(ctx, m[1])
	if errors.Is(err, order.ErrNotFound) {
		return bad("unknown API key")
	} else if err != nil {
		return order.App{}, storeError("load app", err)
	}
	k, ok := x.Keys[r.KeyID]
	secret, matched := svc.keyMatch(r.KeyID, k.SecretHash)
	if !ok || !k.ValidAt(now) || !matched {
		return bad("unknown, expired or revoked API key")
	}
	want := SignServerRequest(secret, r.Method, r.Path, r.Timestamp, r.Nonce, r.Body)
	if !hmac.Equal([]byte(want), []byte(r.Signature)) {
		return bad("the signature does not match the request; sign method, path, timestamp, nonce and the exact body")
	}
	if x.Status != order.AppActive {
		return order.App{}, Errorf(KindUnauthenticated, CodeAppDisabled, "app %s is disabled", x.ID)
	}
	fresh, err := a.store.TakeOnce(ctx, "nonce:"+r.KeyID+":"+r.Nonce, now.Add(nonceLifetime))
	if err != nil {
		return order.App{}, storeError("record nonce", err)
	}
	if !fresh {
		return order.App{}, Errorf(KindUnauthenticated, CodeNonceReused, "this nonce was already used; sign every request with a new one")
	}
	return x, nil
}
