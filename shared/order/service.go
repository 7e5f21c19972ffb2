package order

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"sort"
	"time"
)

// DefaultApp is the app every record belongs to when none is named: the
// single mini-program setup payfn started as. Its records written before
// apps existed carry no app id; the store reads them as DefaultApp.
const DefaultApp = "default"

// AppIDPattern is what an app id looks like: short, lower case, safe in
// keys, URLs and WeChat's out_refund_no alphabet.
var AppIDPattern = regexp.MustCompile(`^[a-z][a-z0-9]{1,15}$`)

// AppStatus says whether an app may use the service.
type AppStatus string

// App statuses. A disabled app's keys authenticate nothing; its orders
// still settle (money is never dropped) and their events are kept.
const (
	AppActive   AppStatus = "active"
	AppDisabled AppStatus = "disabled"
)

// App is one client project of the payment service: its channel settings,
// API keys and webhook endpoints. Merchant names a merchant configured in
// the deployment (its keys stay in the secret store); an app only says which
// of its bound WeChat appids it sells under.
type App struct {
	ID           string    `bson:"_id" json:"id"`
	Name         string    `bson:"name" json:"name"`
	Status       AppStatus `bson:"status" json:"status"`
	Merchant     string    `bson:"merchant" json:"merchant"`
	WeChatAppIDs []string  `bson:"wechat_appids" json:"wechat_appids"`
	// Channels the app's orders may use; an app stored without any has
	// DefaultChannel only.
	Channels  []string            `bson:"channels,omitempty" json:"channels"`
	Keys      map[string]APIKey   `bson:"keys" json:"-"`
	Endpoints map[string]Endpoint `bson:"endpoints" json:"-"`
	CreatedAt time.Time           `bson:"created_at" json:"created_at"`
	UpdatedAt time.Time           `bson:"updated_at" json:"updated_at"`
}

// EnabledChannels is the channels the app's orders may use.
func (a App) EnabledChannels() []string {
	if len(a.Channels) == 0 {
		return []string{DefaultChannel}
	}
	return a.Channels
}

// APIKey is one of an app's server-API keys. Only a hash of its secret is
// stored; the secret itself is shown once, when the key is made.
type APIKey struct {
	ID         string     `bson:"id" json:"id"`
	SecretHash string     `bson:"secret_hash" json:"-"` // hex SHA-256 of the secret
	CreatedAt  time.Time  `bson:"created_at" json:"created_at"`
	ExpiresAt  *time.Time `bson:"expires_at,omitempty" json:"expires_at,omitempty"` // set when a newer key replaces it
}

// ValidAt reports whether the key authenticates at t.
func (k APIKey) ValidAt(t time.Time) bool { return k.ExpiresAt == nil || t.Before(*k.ExpiresAt) }

// HashSecret is how an API key's secret is stored.
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// EndpointStatus says whether webhooks are sent to an endpoint.
type EndpointStatus string

// Endpoint statuses. An endpoint that answers 410 Gone is disabled by the
// dispatcher; an operator may enable it again.
const (
	EndpointEnabled  EndpointStatus = "enabled"
	EndpointDisabled EndpointStatus = "disabled"
)

// Endpoint is where an app's server receives webhooks.
type Endpoint struct {
	ID     string         `bson:"id" json:"id"`
	URL    string         `bson:"url" json:"url"`
	Events []string       `bson:"events,omitempty" json:"events,omitempty"` // empty: every type
	Status EndpointStatus `bson:"status" json:"status"`
	// Reason says why the endpoint was disabled.
	Reason string `bson:"reason,omitempty" json:"reason,omitempty"`
	// Secrets are the signing secrets, newest first, each encrypted with
	// the deployment's service key. During a rotation two are valid and a
	// delivery is signed with both.
	Secrets   []EndpointSecret `bson:"secrets" json:"-"`
	CreatedAt time.Time        `bson:"created_at" json:"created_at"`
}

// EndpointSecret is one encrypted signing secret of an endpoint.
type EndpointSecret struct {
	Sealed    string     `bson:"sealed"` // base64 of nonce || AES-GCM ciphertext
	CreatedAt time.Time  `bson:"created_at"`
	ExpiresAt *time.Time `bson:"expires_at,omitempty"`
}

// Wants reports whether the endpoint receives events of type t.
func (e Endpoint) Wants(t string) bool {
	if e.Status != EndpointEnabled {
		return false
	}
	if len(e.Events) == 0 {
		return true
	}
	for _, w := range e.Events {
		if w == t {
			return true
		}
	}
	return false
}

// SortedEndpoints lists an app's endpoints by id, for stable output.
func (a App) SortedEndpoints() []Endpoint {
	out := make([]Endpoint, 0, len(a.Endpoints))
	for _, e := range a.Endpoints {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SortedKeys lists an app's API keys by creation, newest first.
func (a App) SortedKeys() []APIKey {
	out := make([]APIKey, 0, len(a.Keys))
	for _, k := range a.Keys {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID > out[j].ID
	})
	return out
}

// Event types.
const (
	EventOrderCreated    = "order.created"
	EventOrderPaid       = "order.paid"
	EventOrderClosed     = "order.closed"
	EventOrderException  = "order.exception"
	EventRefundSucceeded = "refund.succeeded"
	EventRefundFailed    = "refund.failed"
)

// EventTypes lists every event type, in the order of an order's life.
var EventTypes = []string{EventOrderCreated, EventOrderPaid, EventOrderClosed, EventOrderException, EventRefundSucceeded, EventRefundFailed}

// EventID derives an event's id from the decision that made it (a claim
// key, or "created:" and the order id), so however many times the decision
// is rolled forward, its event is inserted once.
func EventID(decisionKey string) string {
	h := sha256.Sum256([]byte("payfn-event\x00" + decisionKey))
	return "evt_" + hex.EncodeToString(h[:12])
}

// CreatedKey is the decision key of an order's creation.
func CreatedKey(orderID string) string { return "created:" + orderID }

// DeliveryStatus is where one event's delivery to one endpoint stands.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"   // an attempt is due at NextAt
	DeliverySucceeded DeliveryStatus = "succeeded" // the endpoint answered 2xx
	DeliveryFailed    DeliveryStatus = "failed"    // every scheduled attempt failed
	DeliveryDisabled  DeliveryStatus = "disabled"  // the endpoint was disabled (410, or by the operator)
)

// Event is one decision reported to an app's server: insert-only, keyed by
// its decision. Its deliveries live apart (Delivery), so recording an
// attempt never rewrites the event.
type Event struct {
	ID        string    `bson:"_id" json:"id"`
	AppID     string    `bson:"app_id" json:"app_id"`
	Type      string    `bson:"type" json:"type"`
	OrderID   string    `bson:"order_id" json:"order_id"`
	CreatedAt time.Time `bson:"created_at" json:"created_at"`
	// Body is the exact JSON delivered, fixed at creation so every attempt
	// signs and sends the same bytes.
	Body string `bson:"body" json:"-"`
}

// Delivery is an event's delivery to one endpoint. While it is pending it
// sits in the delivery queue (with a copy of the body, so the dispatcher
// reads nothing else); once settled it moves to the delivered log.
type Delivery struct {
	ID         string         `bson:"_id" json:"-"` // DeliveryID(event, endpoint)
	EventID    string         `bson:"event_id" json:"-"`
	AppID      string         `bson:"app_id" json:"-"`
	EndpointID string         `bson:"endpoint_id" json:"endpoint_id"`
	Type       string         `bson:"type" json:"-"`
	Body       string         `bson:"body" json:"-"`
	Status     DeliveryStatus `bson:"status" json:"status"`
	Attempts   int            `bson:"attempts" json:"attempts"`
	NextAt     time.Time      `bson:"next_at" json:"next_at"`
	CreatedAt  time.Time      `bson:"created_at" json:"-"`
	History    []Attempt      `bson:"history,omitempty" json:"history,omitempty"`
}

// DeliveryID is the id of an event's delivery to an endpoint.
func DeliveryID(eventID, endpointID string) string { return eventID + "/" + endpointID }

// Attempt is one try at delivering an event.
type Attempt struct {
	At        time.Time `bson:"at" json:"at"`
	Status    int       `bson:"status" json:"status"` // the HTTP status, 0 when none came
	LatencyMS int64     `bson:"latency_ms" json:"latency_ms"`
	Error     string    `bson:"error,omitempty" json:"error,omitempty"`
	Manual    bool      `bson:"manual,omitempty" json:"manual,omitempty"` // a redelivery asked for by a person
}

// ProductKey is a product's stored id. The default app's products keep
// their bare ids, as before apps existed; another app's are prefixed with
// its id and a colon, which no product id contains.
func ProductKey(appID, productID string) string {
	if appID == DefaultApp || appID == "" {
		return productID
	}
	return appID + ":" + productID
}

// ServiceRefundNo is the out_refund_no sent to WeChat Pay for a service
// app's refund: derived from the app and its own refund id, so the app's
// retries map to the same refund, and apps never collide in the merchant's
// one namespace of refund numbers.
func ServiceRefundNo(appID, refundID string) string {
	h := sha256.Sum256([]byte("payfn-refund\x00" + appID + "\x00" + refundID))
	return "RF" + hex.EncodeToString(h[:15])
}
