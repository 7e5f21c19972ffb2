package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/payfn/payfn/scripts/receiver/receiver"
	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
)

// The demo app the local stack seeds in service mode: one product, every
// channel the stack configures, and a webhook endpoint on the in-process
// sample receiver.
const (
	DemoAppID       = "demo"
	DemoProductID   = "demo-coffee"
	DemoWebhookPath = "/dev/webhooks" // the sample receiver, on the stack's own port
	// DemoFile, in the data folder (0600), keeps the demo app's API key and
	// webhook secret: payfn shows them once, and payfnctl and the receiver
	// read them from here.
	DemoFile = "demo-app.json"
)

// DemoApp is the demo app's credentials, as DemoFile holds them.
type DemoApp struct {
	AppID         string `json:"app_id"`
	KeyID         string `json:"api_key_id"`
	KeySecret     string `json:"api_key_secret"`
	EndpointID    string `json:"endpoint_id"`
	EndpointURL   string `json:"endpoint_url"`
	WebhookSecret string `json:"webhook_secret"`
}

// seedDemoApp makes sure the demo app, its product and its endpoint exist,
// keeping what an earlier start made. A credential whose secret is not in
// DemoFile (deleted, or from another database) is replaced, since payfn
// cannot show it again.
func (s *Stack) seedDemoApp(ctx context.Context) error {
	a := s.App.App
	path := filepath.Join(s.DataDir, DemoFile)
	var d DemoApp
	if b, err := os.ReadFile(path); err == nil {
		json.Unmarshal(b, &d) // unreadable: its credentials are replaced below
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	d.AppID = DemoAppID

	x, err := a.GetApp(ctx, DemoAppID)
	if err != nil && app.ErrorOf(err).Code != app.CodeAppNotFound {
		return err
	}
	// The demo app sells through every channel the stack configures.
	var channels []string
	for _, c := range AllChannels {
		if slices.Contains(a.ConfiguredChannels(), c) {
			channels = append(channels, c)
		}
	}
	if err != nil {
		var key app.NewCredential
		if x, key, err = a.CreateApp(ctx, app.AppInput{ID: DemoAppID, Name: "Demo shop", Channels: channels}); err != nil {
			return err
		}
		d.KeyID, d.KeySecret, s.DemoShown = key.ID, key.Secret, true
	} else if !keyMatches(x, d) {
		// Keys made with payfnctl keep working for the usual overlap, unless
		// two are valid already.
		_, key, err := a.RotateKey(ctx, DemoAppID, app.DefaultOverlap)
		if err != nil && app.ErrorOf(err).Code == app.CodeTooManyKeys {
			_, key, err = a.RotateKey(ctx, DemoAppID, 0)
		}
		if err != nil {
			return err
		}
		d.KeyID, d.KeySecret, s.DemoShown = key.ID, key.Secret, true
	}

	if !sameSet(x.Channels, channels) {
		if x, err = a.UpdateApp(ctx, DemoAppID, app.AppUpdate{Channels: channels}); err != nil {
			return err
		}
	}

	if _, err := a.CreateProduct(ctx, DemoAppID, app.ProductInput{ID: DemoProductID, Title: "Demo coffee",
		Summary: "Sold through the server API", Image: "☕", PriceFen: 1200}); err != nil && app.ErrorOf(err).Code != app.CodeProductExists {
		return err
	}

	// The endpoint follows the stack's address, which -addr may change.
	d.EndpointURL = s.URL + DemoWebhookPath
	ep, found := demoEndpoint(x, d.EndpointID)
	switch {
	case !found:
		ep, cred, err := a.AddEndpoint(ctx, DemoAppID, app.EndpointInput{URL: d.EndpointURL})
		if err != nil {
			return err
		}
		d.EndpointID, d.WebhookSecret, s.DemoShown = ep.ID, cred.Secret, true
	case d.WebhookSecret == "" || d.EndpointID != ep.ID:
		if _, err := a.UpdateEndpoint(ctx, DemoAppID, ep.ID, app.EndpointUpdate{URL: &d.EndpointURL}); err != nil {
			return err
		}
		_, cred, err := a.RotateEndpointSecret(ctx, DemoAppID, ep.ID, 0)
		if err != nil {
			return err
		}
		d.EndpointID, d.WebhookSecret, s.DemoShown = ep.ID, cred.Secret, true
	case ep.URL != d.EndpointURL:
		if _, err := a.UpdateEndpoint(ctx, DemoAppID, ep.ID, app.EndpointUpdate{URL: &d.EndpointURL}); err != nil {
			return err
		}
	}
	s.Demo = d
	return writeDemo(path, d)
}

// sameSet reports whether a and b hold the same strings.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, v := range a {
		if !slices.Contains(b, v) {
			return false
		}
	}
	return true
}

// keyMatches reports whether d's API key is one of the app's valid keys.
func keyMatches(x app.AppView, d DemoApp) bool {
	if d.KeySecret == "" {
		return false
	}
	for _, k := range x.Keys {
		if k.ID == d.KeyID && k.ValidAt(time.Now()) && k.SecretHash == order.HashSecret(d.KeySecret) {
			return true
		}
	}
	return false
}

// demoEndpoint is the endpoint DemoFile names, or else one on the sample
// receiver's path (its secret lost with the file).
func demoEndpoint(x app.AppView, id string) (order.Endpoint, bool) {
	for _, ep := range x.Endpoints {
		if ep.ID == id {
			return ep, true
		}
	}
	for _, ep := range x.Endpoints {
		if strings.HasSuffix(ep.URL, DemoWebhookPath) {
			return ep, true
		}
	}
	return order.Endpoint{}, false
}

func writeDemo(path string, d DemoApp) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Chmod(path, 0o600) // WriteFile keeps an existing file's mode
}

// record keeps the last events the sample receiver processed, for tests.
func (s *Stack) record(_ context.Context, e receiver.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received = append(s.received, e)
	if len(s.received) > 100 {
		s.received = s.received[len(s.received)-100:]
	}
	return nil
}

// Webhooks returns the events the in-process sample receiver processed
// (the last 100), oldest first.
func (s *Stack) Webhooks() []receiver.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]receiver.Event(nil), s.received...)
}

// TryCommand is a payfnctl line that creates an order for the demo app
// through the signed server API; the sample receiver logs its
// order.created webhook.
func (s *Stack) TryCommand() string {
	cmd := "go run ./scripts/payfnctl"
	if s.URL != "http://127.0.0.1:8080" {
		cmd += " -url " + s.URL
	}
	if filepath.Clean(s.DataDir) != ".payfn" {
		cmd += " -data " + s.DataDir
	}
	return cmd + ` call POST /v1/orders '{"product_id":"` + DemoProductID + `","quantity":1,"request_id":"try-1","buyer":"alice","payer_openid":"o-alice-0001","attach":"cart=42"}'`
}
