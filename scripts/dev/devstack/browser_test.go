package devstack_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payfn/payfn/scripts/dev/devstack"
	"github.com/payfn/payfn/shared/app"
)

const chromiumPath = "/usr/bin/chromium"

// TestCheckoutPageInHeadlessChromiumFromALANAddress drives the checkout page
// the way a person does, in a real browser, from an origin that is not a
// secure context (as when the page is opened over plain http from another
// device on the LAN): log in, buy, get the payment parameters, pay, see
// PAID. It checks that the buttons that no longer apply are disabled, that
// an error shows next to the step that caused it, and that the console has
// no errors. It needs Chromium (Debian package chromium), which .ci/run
// installs; outside CI it skips without it, and the page source checks in
// TestCheckoutPageSource run everywhere.
func TestCheckoutPageInHeadlessChromiumFromALANAddress(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is absent: .ci/run installs it (apt-get install chromium): %v", chromiumPath, err)
		}
		t.Skipf("%s is absent (apt-get install chromium to run this check; CI installs it): %v", chromiumPath, err)
	}
	s := start(t, t.TempDir())
	defer s.Close()
	port := s.URL[strings.LastIndex(s.URL, ":")+1:]
	// A name that is not localhost or a loopback IP makes an insecure
	// origin, like http://192.168.1.5:8080 seen from a phone.
	pageURL := "http://payfn-lan.test:" + port + "/"

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b := launchChromium(t, ctx, "--host-resolver-rules=MAP payfn-lan.test 127.0.0.1")
	page := b.newPage(t)
	page.call(t, "Runtime.enable", nil)
	page.call(t, "Log.enable", nil)
	page.call(t, "Page.enable", nil)
	page.call(t, "Page.navigate", map[string]any{"url": pageURL})

	page.waitFor(t, `document.querySelectorAll('.buy').length === 3`)
	if got := page.eval(t, `[window.isSecureContext, typeof crypto.randomUUID].join(' ')`); got != "false undefined" {
		t.Fatalf("isSecureContext and crypto.randomUUID: %q, want \"false undefined\" (the test must run on an insecure origin)", got)
	}
	if got := page.eval(t, `[...document.querySelectorAll('.buy, #pay, #wxpay')].every(b => b.disabled)`); got != "true" {
		t.Errorf("before logging in, buy and pay buttons enabled: %s", got)
	}

	page.eval(t, `document.getElementById('login').click()`)
	page.waitFor(t, `document.getElementById('who').textContent !== '' || document.getElementById('e1').textContent !== ''`)
	if e := page.eval(t, `document.getElementById('e1').textContent`); e != "" {
		t.Fatalf("login failed on the page: %s", e)
	}
	page.eval(t, `document.querySelector('.buy[data-product="coffee-latte"]').click()`)
	page.waitFor(t, `document.getElementById('order').textContent.includes('NOTPAY') || document.getElementById('e2').textContent !== ''`)
	if e := page.eval(t, `document.getElementById('e2').textContent`); e != "" {
		t.Fatalf("createOrder failed on the page: %s", e)
	}
	page.eval(t, `document.getElementById('pay').click()`)
	page.waitFor(t, `!document.getElementById('wxpay').disabled || document.getElementById('e3').textContent !== ''`)
	page.eval(t, `document.getElementById('wxpay').click()`)
	page.waitFor(t, `document.getElementById('status').textContent.startsWith('PAID') || document.getElementById('e3').textContent + document.getElementById('e4').textContent !== ''`)
	if got := page.eval(t, `[1,2,3,4].map(i => document.getElementById('e' + i).textContent).join('')`); got != "" {
		t.Fatalf("the journey showed errors: %s", got)
	}
	if got := page.eval(t, `document.getElementById('status').textContent`); !strings.HasPrefix(got, "PAID") {
		t.Fatalf("status %q, want PAID", got)
	}
	if got := page.eval(t, `[document.getElementById('pay').disabled, document.getElementById('wxpay').disabled].join(' ')`); got != "true true" {
		t.Errorf("after PAID, pay and wxpay disabled = %s, want true true", got)
	}
	if errs := page.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors during the journey:\n%s", strings.Join(errs, "\n"))
	}

	// A failing step shows its error beside it, and nowhere else.
	page.eval(t, `document.getElementById('openid').value = ''; document.getElementById('login').click()`)
	page.waitFor(t, `document.getElementById('e1').textContent !== ''`)
	if got := page.eval(t, `[2,3,4].map(i => document.getElementById('e' + i).textContent).join('')`); got != "" {
		t.Errorf("a login error showed beside other steps: %q", got)
	}
}

// TestCheckoutPageWalksEveryChannelOfTheDemoApp drives the checkout page in
// Chromium for the demo app, once per channel: pick the channel, buy, pay
// (the WeChat Pay simulator for JSAPI; for H5 and Alipay wap the browser
// leaves for the simulator's payment page, where the button is pressed, and
// comes back to the page's return URL; for the Alipay mini-program the
// simulator's control API stands in for my.tradePay), and see PAID, which
// the page learns from GET /v1/orders/{id}?refresh=true through the app's
// server.
func TestCheckoutPageWalksEveryChannelOfTheDemoApp(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is absent: .ci/run installs it (apt-get install chromium): %v", chromiumPath, err)
		}
		t.Skipf("%s is absent (apt-get install chromium to run this check; CI installs it): %v", chromiumPath, err)
	}
	s := start(t, t.TempDir())
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	b := launchChromium(t, ctx)
	page := b.newPage(t)
	page.call(t, "Runtime.enable", nil)
	page.call(t, "Log.enable", nil)
	page.call(t, "Page.enable", nil)
	page.call(t, "Page.navigate", map[string]any{"url": s.URL + "/"})
	page.waitFor(t, `document.querySelectorAll('#app option').length === 2 && document.querySelectorAll('.buy').length === 3`)

	errs := `[0,1,2,3,4].map(i => document.getElementById('e' + i).textContent).join('')`
	for _, ch := range devstack.AllChannels {
		page.eval(t, `document.getElementById('app').value = 'demo'; document.getElementById('app').onchange(); true`)
		page.waitFor(t, `document.querySelectorAll('.buy').length === 1 && document.querySelectorAll('input[name=channel]').length === 4`)
		page.eval(t, `document.querySelector('input[name=channel][value="`+ch+`"]').click(); true`)
		page.waitFor(t, `!document.querySelector('.buy').disabled`)
		page.eval(t, `document.querySelector('.buy').click(); true`)
		page.waitFor(t, `!document.getElementById('wxpay').disabled || document.getElementById('e2').textContent !== ''`)
		if e := page.eval(t, errs); e != "" {
			t.Fatalf("%s: ordering failed on the page: %s", ch, e)
		}
		page.eval(t, `document.getElementById('wxpay').click(); true`)
		switch ch {
		case app.ChannelWeChatH5:
			page.waitAcross(t, `location.href.startsWith('`+s.SimURL+`') && document.querySelector('#pay button') !== null`)
			page.eval(t, `document.querySelector('#pay button').click(); true`)
		case app.ChannelAlipayWap:
			page.waitAcross(t, `location.href.startsWith('`+s.AlipayURL+`/cashier/') && document.getElementById('pay') !== null`)
			page.eval(t, `document.getElementById('pay').click(); true`)
		}
		page.waitAcross(t, `location.href.startsWith('`+s.URL+`/') && (document.getElementById('status').textContent.startsWith('PAID') || `+errs+` !== '')`)
		if e := page.eval(t, errs); e != "" {
			t.Fatalf("%s: the journey showed errors: %s", ch, e)
		}
		if got := page.eval(t, `document.getElementById('order').textContent`); !strings.Contains(got, "PAID") {
			t.Fatalf("%s: order %q, want PAID", ch, got)
		}
	}
	var own []string
	for _, e := range page.consoleErrors() {
		if !strings.Contains(e, "favicon") { // the simulators' pages have no icon
			own = append(own, e)
		}
	}
	if len(own) > 0 {
		t.Errorf("console errors during the journeys:\n%s", strings.Join(own, "\n"))
	}
}

// waitAcross polls cond like waitFor, across navigations: while the page
// is between documents an evaluation fails, and that is waited out too.
func (p *tab) waitAcross(t *testing.T, cond string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		res, err := p.b.send(p.session, "Runtime.evaluate", map[string]any{"expression": "!!(" + cond + ")", "returnByValue": true})
		if err == nil {
			var r struct {
				Result struct {
					Value any `json:"value"`
				} `json:"result"`
			}
			if json.Unmarshal(res, &r) == nil && r.Result.Value == true {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", cond)
}

// TestCheckoutPageSource checks, without a browser, what the browser test
// proves: no crypto.randomUUID (missing on insecure origins), and no 404 for
// the icon browsers ask for.
func TestCheckoutPageSource(t *testing.T) {
	s := start(t, t.TempDir())
	defer s.Close()
	page := get(t, s.URL+"/")
	if strings.Contains(page, "randomUUID(") {
		t.Error("the checkout page calls crypto.randomUUID, which is undefined when it is opened over http from the LAN")
	}
	if !strings.Contains(page, "crypto.getRandomValues") {
		t.Error("the checkout page no longer makes request ids with crypto.getRandomValues")
	}
	if !strings.Contains(page, `rel="icon"`) {
		t.Error("the checkout page links no icon, so browsers ask for /favicon.ico")
	}
	resp := getResp(t, s.URL+"/favicon.ico")
	if resp.StatusCode >= 400 {
		t.Errorf("/favicon.ico: %d, want a 2xx (a 404 is a console error)", resp.StatusCode)
	}
}

// browser is headless Chromium driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: JSON messages separated by NUL on fds 3 and 4),
// which needs no WebSocket client.
type browser struct {
	w      io.Writer
	mu     sync.Mutex
	nextID int
	wait   map[int]chan cdpMessage
	events []cdpMessage
	ctx    context.Context
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

func launchChromium(t *testing.T, ctx context.Context, extra ...string) *browser {
	t.Helper()
	toChrome, ourEnd, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromChrome, chromeEnd, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir(), "--remote-debugging-pipe",
	}, extra...)
	cmd := exec.CommandContext(ctx, chromiumPath, append(args, "about:blank")...)
	cmd.ExtraFiles = []*os.File{toChrome, chromeEnd} // fd 3: commands in, fd 4: replies out
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	toChrome.Close()
	chromeEnd.Close()
	t.Cleanup(func() {
		ourEnd.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		fromChrome.Close()
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", stderr.String())
		}
	})
	b := &browser{w: ourEnd, wait: map[int]chan cdpMessage{}, ctx: ctx}
	go b.read(fromChrome)
	return b
}

func (b *browser) read(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		raw, err := br.ReadBytes(0)
		if err != nil {
			return
		}
		var m cdpMessage
		if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
			continue
		}
		b.mu.Lock()
		if ch, ok := b.wait[m.ID]; ok && m.ID != 0 {
			delete(b.wait, m.ID)
			ch <- m
		} else if m.Method != "" {
			b.events = append(b.events, m)
		}
		b.mu.Unlock()
	}
}

func (b *browser) send(session, method string, params any) (json.RawMessage, error) {
	if params == nil {
		params = map[string]any{}
	}
	p, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	ch := make(chan cdpMessage, 1)
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	b.wait[id] = ch
	msg, err := json.Marshal(cdpMessage{ID: id, Method: method, Params: p, SessionID: session})
	if err == nil {
		_, err = b.w.Write(append(msg, 0))
	}
	b.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		return m.Result, nil
	case <-b.ctx.Done():
		return nil, fmt.Errorf("%s: %w", method, b.ctx.Err())
	}
}

type tab struct {
	b       *browser
	session string
}

func (b *browser) newPage(t *testing.T) *tab {
	t.Helper()
	res, err := b.send("", "Target.createTarget", map[string]any{"url": "about:blank"})
	if err != nil {
		t.Fatal(err)
	}
	var target struct{ TargetID string }
	json.Unmarshal(res, &target)
	res, err = b.send("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true})
	if err != nil {
		t.Fatal(err)
	}
	var att struct{ SessionID string }
	json.Unmarshal(res, &att)
	return &tab{b: b, session: att.SessionID}
}

func (p *tab) call(t *testing.T, method string, params any) json.RawMessage {
	t.Helper()
	res, err := p.b.send(p.session, method, params)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// eval runs JavaScript in the page (awaiting a promise) and returns its
// value as a string.
func (p *tab) eval(t *testing.T, js string) string {
	t.Helper()
	res := p.call(t, "Runtime.evaluate", map[string]any{"expression": js, "awaitPromise": true, "returnByValue": true})
	var r struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatal(err)
	}
	if r.ExceptionDetails != nil {
		t.Fatalf("%s: %s %s", js, r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	if r.Result.Value == nil {
		return ""
	}
	return fmt.Sprint(r.Result.Value)
}

// waitFor polls cond in the page until it is true (15 s at most).
func (p *tab) waitFor(t *testing.T, cond string) {
	t.Helper()
	js := `new Promise((resolve, reject) => {
  const t0 = Date.now();
  (function poll() {
    let v;
    try { v = (` + cond + `); } catch (e) { reject(e); return; }
    if (v) { resolve(true); return; }
    if (Date.now() - t0 > 15000) { reject(new Error('timed out')); return; }
    setTimeout(poll, 50);
  })();
})`
	p.eval(t, js)
}

// consoleErrors lists uncaught exceptions, console.error calls and error log
// entries (failed loads among them) so far.
func (p *tab) consoleErrors() []string {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	var out []string
	for _, e := range p.b.events {
		switch e.Method {
		case "Runtime.exceptionThrown":
			out = append(out, "exception: "+string(e.Params))
		case "Runtime.consoleAPICalled":
			var c struct{ Type string }
			json.Unmarshal(e.Params, &c)
			if c.Type == "error" || c.Type == "assert" {
				out = append(out, "console."+c.Type+": "+string(e.Params))
			}
		case "Log.entryAdded":
			var l struct {
				Entry struct{ Level, Text, URL string }
			}
			json.Unmarshal(e.Params, &l)
			if l.Entry.Level == "error" {
				out = append(out, fmt.Sprintf("log: %s %s", l.Entry.Text, l.Entry.URL))
			}
		}
	}
	return out
}
