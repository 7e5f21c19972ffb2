package setup_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/setup"
	"github.com/payfn/payfn/shared/webhook"
)

// delivery is an event's delivery to endpoint ep as the event view shows it.
func delivery(t *testing.T, ev map[string]any, ep string) map[string]any {
	t.Helper()
	ds, _ := ev["deliveries"].([]any)
	for _, d := range ds {
		if m, _ := d.(map[string]any); m["endpoint_id"] == ep {
			return m
		}
	}
	t.Fatalf("event %v has no delivery to %s", ev, ep)
	return nil
}

// statuses lists the HTTP statuses of a delivery's attempts.
func statuses(d map[string]any) []int {
	hs, _ := d["history"].([]any)
	var out []int
	for _, h := range hs {
		m, _ := h.(map[string]any)
		s, _ := m["status"].(float64)
		out = append(out, int(s))
	}
	return out
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// event reads one of the app's events through the server API.
func (c *client) event(id string) map[string]any {
	c.h.t.Helper()
	return c.call(http.MethodGet, "/v1/events/"+id, nil).want(c.h.t, 200, "").body
}

func TestServiceWebhookRetriedOnScheduleUntilTheReceiverRecoversIsReceivedOnceWithOneIDAndBothSignaturesDuringRotation(t *testing.T) {
	h, clock := clockedServiceHarness(t)
	a := h.clockedApp("shopa", clock)
	rc := newReceiver(t)
	rc.verifyAt(clock.Now)
	ep := a.endpoint(rc)
	oldSecret := rc.secret
	// Down for each event's first 3 attempts, then up.
	rc.respondWith(func(w http.ResponseWriter, r *http.Request, attempt int) int {
		if attempt < 3 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	a.product("p", 1200)
	r := a.order("p", "buyer1", "req-1", "x").want(t, 201, "")
	id := r.str("order_id")
	a.payOrder(r)
	h.waitAcked(id)
	created, paid := a.eventOf(id, order.EventOrderCreated), a.eventOf(id, order.EventOrderPaid)
	ids := []string{created["id"].(string), paid["id"].(string)}

	// The first attempt was made at once, by the function that decided.
	if n := len(rc.hooks()); n != 2 {
		t.Fatalf("receiver got %d requests right after the decisions, want 2 (one per event)", n)
	}
	var newSecret string
	for i, base := range []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute} {
		before := len(rc.hooks())
		// Not before the scheduled wait…
		clock.Advance(base - time.Second)
		h.dispatch()
		if n := len(rc.hooks()); n != before {
			t.Fatalf("retry %d: an attempt came %v after the last, before its %v wait", i+1, base-time.Second, base)
		}
		if i == 2 {
			// Rotate the endpoint's secret while the retries go on.
			rot := h.admin(http.MethodPost, "/admin/apps/shopa/endpoints/"+ep+"/secret", map[string]any{}).want(t, 201, "")
			newSecret = rot.str("secret")
			if newSecret == "" || newSecret == oldSecret {
				t.Fatalf("rotate secret answered %s", rot.raw)
			}
		}
		// …and no later than the wait and its 10 % jitter.
		clock.Advance(time.Second + base/10 + time.Second)
		h.dispatch()
		hooks := rc.hooks()
		if n := len(hooks) - before; n != 2 {
			t.Fatalf("retry %d: %d attempts after %v, want one per event", i+1, n, base+base/10+time.Second)
		}
		for _, hk := range hooks[before:] {
			if hk.Verified != nil {
				t.Errorf("retry %d of %s does not verify with the first secret: %v", i+1, hk.ID, hk.Verified)
			}
			if newSecret != "" {
				if err := webhook.VerifyAt(newSecret, hk.Header, hk.Raw, clock.Now(), 0); err != nil {
					t.Errorf("retry %d of %s does not verify with the new secret: %v", i+1, hk.ID, err)
				}
				if sigs := strings.Fields(hk.Header.Get("webhook-signature")); len(sigs) != 2 {
					t.Errorf("during the rotation webhook-signature is %q, want two signatures", hk.Header.Get("webhook-signature"))
				}
			}
		}
	}

	hooks := rc.hooks()
	if len(hooks) != 8 {
		t.Fatalf("receiver got %d requests, want 4 per event", len(hooks))
	}
	perID := map[string]int{}
	for _, hk := range hooks {
		perID[hk.ID]++
	}
	got := received(hooks)
	for _, evt := range ids {
		if perID[evt] != 4 || got[evt] != 1 {
			t.Errorf("event %s: %d requests with its webhook-id, %d answered 2xx; want 4 and 1 (ids seen %v)", evt, perID[evt], got[evt], perID)
		}
		d := delivery(t, a.event(evt), ep)
		if d["status"] != string(order.DeliverySucceeded) || !sameInts(statuses(d), []int{500, 500, 500, 204}) {
			t.Errorf("event %s delivery %v, want succeeded after 500, 500, 500, 204", evt, d)
		}
	}
	// Delivered: nothing more is sent, however long the dispatcher runs.
	clock.Advance(24 * time.Hour)
	if rep := h.dispatch(); rep.Due != 0 {
		t.Errorf("a day later the dispatcher found %d events due", rep.Due)
	}
	if n := len(rc.hooks()); n != 8 {
		t.Errorf("receiver got %d requests after delivery succeeded", n-8)
	}
}

func TestServiceWebhookEndpointAnswering410IsDisabledAndGetsNoLaterEvents(t *testing.T) {
	h := newServiceHarness(t)
	a := h.newApp("shopa")
	gone := newReceiver(t)
	gone.respondWith(func(http.ResponseWriter, *http.Request, int) int { return http.StatusGone })
	goneEP := a.endpoint(gone)
	live := newReceiver(t)
	a.endpoint(live)
	a.product("p", 1200)

	first := a.order("p", "buyer1", "req-1", "").want(t, 201, "").str("order_id")
	if n := len(gone.hooks()); n != 1 {
		t.Fatalf("the endpoint got %d requests, want the first attempt", n)
	}
	v := h.admin(http.MethodGet, "/admin/apps/shopa", nil).want(t, 200, "")
	eps, _ := v.body["endpoints"].([]any)
	for _, e := range eps {
		m := e.(map[string]any)
		if m["id"] == goneEP && (m["status"] != string(order.EndpointDisabled) || !strings.Contains(m["reason"].(string), "410")) {
			t.Errorf("the endpoint that answered 410 is %v, want disabled for 410", m)
		}
		if m["id"] != goneEP && m["status"] != string(order.EndpointEnabled) {
			t.Errorf("the healthy endpoint is %v", m)
		}
	}
	d := delivery(t, a.eventOf(first, order.EventOrderCreated), goneEP)
	if d["status"] != string(order.DeliveryDisabled) {
		t.Errorf("the delivery answered 410 is %v, want disabled", d)
	}

	second := a.order("p", "buyer2", "req-2", "").want(t, 201, "").str("order_id")
	h.dispatch()
	if n := len(gone.hooks()); n != 1 {
		t.Errorf("a disabled endpoint got %d more requests", n-1)
	}
	if got := received(live.hooks()); len(got) != 2 {
		t.Errorf("the healthy endpoint received %v, want both order.created events", got)
	}
	for _, e := range a.events(second) {
		ds, _ := e["deliveries"].([]any)
		for _, d := range ds {
			if d.(map[string]any)["endpoint_id"] == goneEP {
				t.Errorf("a later event has a delivery to the disabled endpoint: %v", e)
			}
		}
	}
}

func TestServiceWebhookAnswered429Or503WithRetryAfterIsNotRetriedBeforeTheWaitItAskedFor(t *testing.T) {
	h, clock := clockedServiceHarness(t)
	a := h.clockedApp("shopa", clock)
	busy := func(status int, retryAfter string) *receiver {
		rc := newReceiver(t)
		rc.respondWith(func(w http.ResponseWriter, r *http.Request, attempt int) int {
			if attempt == 0 {
				w.Header().Set("Retry-After", retryAfter)
				return status
			}
			return http.StatusOK
		})
		return rc
	}
	r429, r503 := busy(http.StatusTooManyRequests, "120"), busy(http.StatusServiceUnavailable, "600")
	ep429, ep503 := a.endpoint(r429), a.endpoint(r503)
	a.product("p", 1200)
	start := clock.Now()
	id := a.order("p", "buyer1", "req-1", "").want(t, 201, "").str("order_id")
	ev := a.eventOf(id, order.EventOrderCreated)
	for ep, wait := range map[string]time.Duration{ep429: 120 * time.Second, ep503: 600 * time.Second} {
		d := delivery(t, ev, ep)
		next, err := time.Parse(time.RFC3339Nano, d["next_at"].(string))
		if err != nil || next.Before(start.Add(wait).Truncate(time.Millisecond)) {
			t.Errorf("delivery %v is due at %v, want no earlier than %v", d, next, start.Add(wait))
		}
	}

	step := func(to time.Duration, want429, want503 int) {
		t.Helper()
		clock.Advance(start.Add(to).Sub(clock.Now()))
		h.dispatch()
		if n, m := len(r429.hooks()), len(r503.hooks()); n != want429 || m != want503 {
			t.Errorf("%v after the first attempt: 429 endpoint got %d requests, 503 endpoint %d; want %d and %d", to, n, m, want429, want503)
		}
	}
	step(6*time.Second, 1, 1) // the ordinary 5 s retry is overridden
	step(119*time.Second, 1, 1)
	step(121*time.Second, 2, 1)
	step(599*time.Second, 2, 1)
	step(601*time.Second, 2, 2)
	for _, rc := range []*receiver{r429, r503} {
		if got := received(rc.hooks()); got[ev["id"].(string)] != 1 {
			t.Errorf("received %v, want the event once", got)
		}
	}
}

func TestServiceWebhookDispatcherKilledMidDeliveryIsRedeliveredWithTheSameIDOnceItsLeaseExpires(t *testing.T) {
	h, clock := clockedServiceHarness(t)
	a := h.clockedApp("shopa", clock)
	rc := newReceiver(t)
	ep := a.endpoint(rc)
	inFlight := make(chan struct{})
	rc.respondWith(func(w http.ResponseWriter, r *http.Request, attempt int) int {
		switch attempt {
		case 0:
			return http.StatusInternalServerError // the first attempt, made at once
		case 1:
			close(inFlight) // the dispatcher that dies is mid-request
			<-r.Context().Done()
			return http.StatusOK // never seen: the sender is gone
		}
		return http.StatusOK
	})
	a.product("p", 1200)
	id := a.order("p", "buyer1", "req-1", "").want(t, 201, "").str("order_id")
	evt := a.eventOf(id, order.EventOrderCreated)["id"].(string)

	// Another dispatcher process on the same store takes the due event up
	// and dies in the middle of the request: its store connection is gone
	// and its context cancelled, so it records nothing and its lease stays.
	dying, err := setup.NewStack(h.cfg, setup.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(6 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		dying.App.DispatchWebhooks(ctx)
	}()
	select {
	case <-inFlight:
	case <-time.After(10 * time.Second):
		t.Fatal("the dispatcher never sent the due event")
	}
	dying.Close(context.Background())
	cancel()
	<-done

	if d := delivery(t, a.event(evt), ep); d["attempts"] != float64(1) || d["status"] != string(order.DeliveryPending) {
		t.Fatalf("after the kill the delivery is %v, want the first attempt only, still pending", d)
	}
	// While the dead holder's lease lasts, nobody sends the event.
	if rep := h.dispatch(); rep.Attempted != 0 || rep.Skipped != 1 {
		t.Errorf("with the lease held the dispatcher reported %+v, want the event skipped", rep)
	}
	if n := len(rc.hooks()); n != 2 {
		t.Errorf("receiver got %d requests while the lease was held, want 2", n)
	}
	clock.Advance(21 * time.Second)
	if rep := h.dispatch(); rep.Attempted != 1 {
		t.Errorf("after the lease expired the dispatcher reported %+v, want one delivery", rep)
	}
	hooks := rc.hooks()
	if len(hooks) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(hooks))
	}
	for _, hk := range hooks {
		if hk.ID != evt {
			t.Errorf("a request carried webhook-id %s, want %s on every attempt", hk.ID, evt)
		}
	}
	if got := received(hooks); got[evt] != 1 || !hooks[2].OK() {
		t.Errorf("received %v (last %d), want the event once, by the redelivery", got, hooks[2].Status)
	}
	d := delivery(t, a.event(evt), ep)
	if d["status"] != string(order.DeliverySucceeded) || !sameInts(statuses(d), []int{500, 200}) {
		t.Errorf("delivery %v, want succeeded after 500 then 200", d)
	}
}

func TestServiceRedeliverSendsTheSameWebhookIDAgainAndTheOperatorSeesEveryAttempt(t *testing.T) {
	h := newServiceHarness(t)
	a := h.newApp("shopa")
	rc := newReceiver(t)
	ep := a.endpoint(rc)
	a.product("p", 1200)
	id := a.order("p", "buyer1", "req-1", "").want(t, 201, "").str("order_id")
	evt := a.eventOf(id, order.EventOrderCreated)["id"].(string)

	again := a.call(http.MethodPost, "/v1/events/"+evt+"/redeliver", map[string]any{}).want(t, 200, "")
	if again.str("id") != evt {
		t.Errorf("redeliver answered %s", again.raw)
	}
	h.admin(http.MethodPost, "/admin/apps/shopa/events/"+evt+"/redeliver", map[string]any{}).want(t, 200, "")
	hooks := rc.hooks()
	if len(hooks) != 3 {
		t.Fatalf("receiver got %d requests, want the first and two redeliveries", len(hooks))
	}
	for _, hk := range hooks {
		if hk.ID != evt || hk.Verified != nil || !hk.OK() {
			t.Errorf("request %+v, want webhook-id %s, verified", hk, evt)
		}
	}
	if string(hooks[0].Raw) != string(hooks[2].Raw) {
		t.Errorf("a redelivery sent other bytes:\n%s\n%s", hooks[0].Raw, hooks[2].Raw)
	}

	list := h.admin(http.MethodGet, "/admin/apps/shopa/events", nil).want(t, 200, "")
	evs, _ := list.body["events"].([]any)
	if len(evs) != 1 {
		t.Fatalf("operator's event list %s", list.raw)
	}
	d := delivery(t, evs[0].(map[string]any), ep)
	hs, _ := d["history"].([]any)
	if len(hs) != 3 || d["attempts"] != float64(3) || d["status"] != string(order.DeliverySucceeded) {
		t.Fatalf("operator sees delivery %v, want 3 attempts in its history", d)
	}
	for i, x := range hs {
		m := x.(map[string]any)
		manual, _ := m["manual"].(bool)
		if m["status"] != float64(204) || manual != (i > 0) || m["at"] == nil {
			t.Errorf("attempt %d: %v, want 204 and manual only for the redeliveries", i, m)
		}
	}
	h.admin(http.MethodGet, "/admin/apps/shopa/events/"+evt, nil).want(t, 200, "")
	// Redelivering an unknown event, or an app that does not exist.
	a.call(http.MethodPost, "/v1/events/evt_000000000000000000000000/redeliver", map[string]any{}).want(t, 404, app.CodeEventNotFound)
	h.admin(http.MethodGet, "/admin/apps/nosuch/events", nil).want(t, 404, app.CodeAppNotFound)
}

func TestServiceOrderWhoseCreatedEventIsMissingGetsItFromTheDispatcherSweepOnceAMinuteOld(t *testing.T) {
	h, clock := clockedServiceHarness(t)
	a := h.clockedApp("shopa", clock)
	rc := newReceiver(t)
	a.endpoint(rc)
	a.product("p", 1200)
	ctx := context.Background()

	// One order lost its event after it was made; another was written by
	// a creator that died before recording its event at all.
	lost := a.order("p", "buyer1", "req-1", "kept").want(t, 201, "").str("order_id")
	lostEvt := order.EventID(order.CreatedKey(lost))
	h.forgetEvent(lostEvt)
	p, err := h.stack.Store.Product(ctx, "shopa", "p")
	if err != nil {
		t.Fatal(err)
	}
	bare, err := order.NewOrder(app.NewOrderID(), "buyer2", "req-2", p, 2, clock.Now(), 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	bare.AppID, bare.PayerOpenID, bare.Attach = "shopa", "openid-buyer2", "bare"
	if err := h.stack.Store.InsertOrder(ctx, bare); err != nil {
		t.Fatal(err)
	}
	firstHooks := len(rc.hooks())

	// Younger than a minute: the creator may still be at work.
	if rep := h.dispatch(); rep.Created != 0 {
		t.Errorf("the sweep repaired %d orders younger than a minute", rep.Created)
	}
	for _, o := range []string{lost, bare.ID} {
		if es := a.events(o); len(es) != 0 {
			t.Errorf("order %s has events before the sweep: %v", o, es)
		}
	}
	clock.Advance(61 * time.Second)
	if rep := h.dispatch(); rep.Created != 2 {
		t.Errorf("the sweep repaired %d orders, want 2", rep.Created)
	}
	for o, attach := range map[string]string{lost: "kept", bare.ID: "bare"} {
		e := a.eventOf(o, order.EventOrderCreated)
		data, _ := e["data"].(map[string]any)
		eo, _ := data["order"].(map[string]any)
		if e["id"] != order.EventID(order.CreatedKey(o)) || data["attach"] != attach || eo["status"] != string(order.StatusNotPay) {
			t.Errorf("rolled-forward event %v", e)
		}
	}
	if rep := h.dispatch(); rep.Created != 0 {
		t.Errorf("a second sweep repaired %d again", rep.Created)
	}
	// Delivered by the dispatcher, with the id the event always had.
	clock.Advance(21 * time.Second)
	h.dispatch()
	got := received(rc.hooks()[firstHooks:])
	if got[lostEvt] != 1 || got[order.EventID(order.CreatedKey(bare.ID))] != 1 || len(got) != 2 {
		t.Errorf("received %v, want each rolled-forward event once", got)
	}
}

func TestServiceRepeatedOrderRequestAfterDeliveryNeitherQueuesNorSendsTheCreatedEventAgain(t *testing.T) {
	h, clock := clockedServiceHarness(t)
	a := h.clockedApp("shopa", clock)
	rc := newReceiver(t)
	ep := a.endpoint(rc)
	a.product("p", 1200)
	id := a.order("p", "buyer1", "req-1", "").want(t, 201, "").str("order_id")
	evt := a.eventOf(id, order.EventOrderCreated)["id"].(string)
	if got := received(rc.hooks()); got[evt] != 1 {
		t.Fatalf("received %v, want order.created delivered at once", got)
	}
	// The buyer's server retries its request (a lost answer, a double tap):
	// the same order comes back, and its event is already delivered.
	for i := 0; i < 2; i++ {
		if r := a.order("p", "buyer1", "req-1", "").want(t, 200, ""); r.str("order_id") != id {
			t.Fatalf("repeat answered %s", r.raw)
		}
	}
	clock.Advance(time.Minute)
	if rep := h.dispatch(); rep.Due != 0 {
		t.Errorf("the dispatcher found %d deliveries due for an event already delivered", rep.Due)
	}
	if got := received(rc.hooks()); got[evt] != 1 || len(rc.hooks()) != 1 {
		t.Errorf("receiver got %d requests, %v answered 2xx; want order.created once", len(rc.hooks()), got)
	}
	ds, _ := a.event(evt)["deliveries"].([]any)
	if len(ds) != 1 {
		t.Fatalf("event shows %d deliveries, want its one to %s: %v", len(ds), ep, ds)
	}
	if d := delivery(t, a.event(evt), ep); d["status"] != string(order.DeliverySucceeded) || d["attempts"] != float64(1) {
		t.Errorf("delivery %v, want succeeded at the first attempt", d)
	}
}
