// Command payfnctl is the operator's command line for a payfn stack in
// service mode, local or deployed. It manages client apps, their API keys
// and webhook endpoints and events through the admin API, and signs
// server-API calls as an app's server would, for trying them.
//
//	go run ./scripts/payfnctl [-url URL] [-admin-key KEY] [-data DIR] COMMAND …
//
// -url defaults to $PAYFN_URL, else the local stack (go run ./scripts/dev).
// -admin-key defaults to $PAYFN_ADMIN_KEY, else, for a loopback URL only, the
// local stack's key in DIR/local-secrets.json. `call` takes -key-id and
// -secret, else $PAYFN_KEY_ID and $PAYFN_KEY_SECRET, else (loopback only) the
// demo app's key in DIR/demo-app.json.
//
// Answers are printed as indented JSON. A non-2xx answer goes to stderr and
// the exit status is 1; a usage mistake exits 2.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/payfn/payfn/shared/app"
)

// DefaultURL is the local stack's address (scripts/dev's -addr default).
const DefaultURL = "http://127.0.0.1:8080"

const usage = `usage: payfnctl [-url URL] [-admin-key KEY] [-data DIR] COMMAND …

apps create -id ID -name NAME [-wechat-appids wx…,wx…]
apps list
apps show ID
apps update ID [-name NAME] [-status active|disabled] [-wechat-appids wx…,wx…]
keys rotate ID [-overlap-hours 24]
keys revoke ID KEYID
endpoints add ID -url URL [-events order.paid,…]
endpoints update ID EPID [-url URL] [-status enabled|disabled] [-events …]
endpoints rotate-secret ID EPID [-overlap-hours 24]
events list ID [-order ORDERID] [-limit N] [-cursor C]
events show ID EVTID
events redeliver ID EVTID
call [-key-id K] [-secret S] METHOD PATH [JSON]   (a signed server-API request)

global flags:
  -url        payfn's base URL (default $PAYFN_URL, else ` + DefaultURL + `)
  -admin-key  the admin key (default $PAYFN_ADMIN_KEY, else the local stack's)
  -data       the local stack's data folder (default .payfn)
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// errUsage is a command line mistake (exit 2); errAnswered, a non-2xx answer
// already printed (exit 1).
var (
	errUsage    = errors.New("usage")
	errAnswered = errors.New("answered with an error")
)

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// cli is one invocation.
type cli struct {
	base     string
	adminKey string
	dataDir  string
	getenv   func(string) string
	client   *http.Client
	stdout   io.Writer
	stderr   io.Writer
}

// run is the whole program; it returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("payfnctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	c := &cli{getenv: getenv, client: &http.Client{Timeout: 30 * time.Second}, stdout: stdout, stderr: stderr}
	fs.StringVar(&c.base, "url", "", "")
	fs.StringVar(&c.adminKey, "admin-key", "", "")
	fs.StringVar(&c.dataDir, "data", ".payfn", "")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		return 2
	}
	if c.base == "" {
		c.base = getenv("PAYFN_URL")
	}
	if c.base == "" {
		c.base = DefaultURL
	}
	c.base = strings.TrimRight(c.base, "/")

	err := c.command(ctx, fs.Args())
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errAnswered):
		return 1
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stderr, usage)
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "payfnctl: %v\n\n%s", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "payfnctl: %v\n", err)
		return 1
	}
}

func (c *cli) command(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErr("no command")
	}
	if args[0] == "call" {
		return c.call(ctx, args[1:])
	}
	if len(args) < 2 {
		return usageErr("%s needs a subcommand", args[0])
	}
	name, rest := args[0]+" "+args[1], args[2:]
	fs := newFlagSet(name)
	switch name {
	case "apps create":
		id := fs.String("id", "", "app id: 2-16 of a-z 0-9, starting with a letter")
		appName := fs.String("name", "", "display name")
		wx := fs.String("wechat-appids", "", "comma-separated mini-program appids (default the merchant's)")
		if _, err := parse(fs, rest); err != nil {
			return err
		}
		if *id == "" || *appName == "" {
			return usageErr("apps create needs -id and -name")
		}
		body := map[string]any{"app_id": *id, "name": *appName}
		if *wx != "" {
			body["wechat_appids"] = list(*wx)
		}
		if err := c.admin(ctx, http.MethodPost, "/admin/apps", body); err != nil {
			return err
		}
		fmt.Fprintln(c.stderr, "Store api_key.secret now: it is shown once (payfn keeps only a hash). Its server signs requests with it.")
		return nil
	case "apps list":
		if _, err := parse(fs, rest); err != nil {
			return err
		}
		return c.admin(ctx, http.MethodGet, "/admin/apps", nil)
	case "apps show":
		p, err := parse(fs, rest, "ID")
		if err != nil {
			return err
		}
		return c.admin(ctx, http.MethodGet, path("admin", "apps", p[0]), nil)
	case "apps update":
		fs.String("name", "", "new display name")
		fs.String("status", "", "active or disabled")
		fs.String("wechat-appids", "", "comma-separated mini-program appids")
		p, err := parse(fs, rest, "ID")
		if err != nil {
			return err
		}
		body := setFlags(fs, map[string]string{"name": "name", "status": "status", "wechat-appids": "wechat_appids"})
		if len(body) == 0 {
			return usageErr("apps update needs -name, -status or -wechat-appids")
		}
		return c.admin(ctx, http.MethodPatch, path("admin", "apps", p[0]), body)
	case "keys rotate":
		hours := fs.Int("overlap-hours", 24, "hours the app's current keys stay valid (0: revoke them now)")
		p, err := parse(fs, rest, "ID")
		if err != nil {
			return err
		}
		if err := c.admin(ctx, http.MethodPost, path("admin", "apps", p[0], "keys"), map[string]any{"overlap_hours": *hours}); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "Store api_key.secret now: it is shown once. The app's previous keys stay valid for %d hours.\n", *hours)
		return nil
	case "keys revoke":
		p, err := parse(fs, rest, "ID", "KEYID")
		if err != nil {
			return err
		}
		return c.admin(ctx, http.MethodDelete, path("admin", "apps", p[0], "keys", p[1]), nil)
	case "endpoints add":
		u := fs.String("url", "", "the receiver's URL (https, public host)")
		events := fs.String("events", "", "comma-separated event types (default all)")
		p, err := parse(fs, rest, "ID")
		if err != nil {
			return err
		}
		if *u == "" {
			return usageErr("endpoints add needs -url")
		}
		body := map[string]any{"url": *u}
		if *events != "" {
			body["events"] = list(*events)
		}
		if err := c.admin(ctx, http.MethodPost, path("admin", "apps", p[0], "endpoints"), body); err != nil {
			return err
		}
		fmt.Fprintln(c.stderr, "Store the whsec_ secret now: it is shown once. The receiver verifies every delivery with it.")
		return nil
	case "endpoints update":
		fs.String("url", "", "new URL")
		fs.String("status", "", "enabled or disabled")
		fs.String("events", "", "comma-separated event types")
		p, err := parse(fs, rest, "ID", "EPID")
		if err != nil {
			return err
		}
		body := setFlags(fs, map[string]string{"url": "url", "status": "status", "events": "events"})
		if len(body) == 0 {
			return usageErr("endpoints update needs -url, -status or -events")
		}
		return c.admin(ctx, http.MethodPatch, path("admin", "apps", p[0], "endpoints", p[1]), body)
	case "endpoints rotate-secret":
		hours := fs.Int("overlap-hours", 24, "hours deliveries stay signed with the previous secret too")
		p, err := parse(fs, rest, "ID", "EPID")
		if err != nil {
			return err
		}
		if err := c.admin(ctx, http.MethodPost, path("admin", "apps", p[0], "endpoints", p[1], "secret"), map[string]any{"overlap_hours": *hours}); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "Store the whsec_ secret now: it is shown once. Deliveries carry both signatures for %d hours.\n", *hours)
		return nil
	case "events list":
		orderID := fs.String("order", "", "only this order's events")
		limit := fs.Int("limit", 0, "events per page, 1-100 (default 20)")
		cursor := fs.String("cursor", "", "the next value of the previous page")
		p, err := parse(fs, rest, "ID")
		if err != nil {
			return err
		}
		q := url.Values{}
		if *orderID != "" {
			q.Set("order_id", *orderID)
		}
		if *limit != 0 {
			q.Set("limit", strconv.Itoa(*limit))
		}
		if *cursor != "" {
			q.Set("cursor", *cursor)
		}
		pth := path("admin", "apps", p[0], "events")
		if len(q) > 0 {
			pth += "?" + q.Encode()
		}
		return c.admin(ctx, http.MethodGet, pth, nil)
	case "events show":
		p, err := parse(fs, rest, "ID", "EVTID")
		if err != nil {
			return err
		}
		return c.admin(ctx, http.MethodGet, path("admin", "apps", p[0], "events", p[1]), nil)
	case "events redeliver":
		p, err := parse(fs, rest, "ID", "EVTID")
		if err != nil {
			return err
		}
		return c.admin(ctx, http.MethodPost, path("admin", "apps", p[0], "events", p[1], "redeliver"), map[string]any{})
	}
	return usageErr("unknown command %q", name)
}

// newFlagSet is a command's flags; run reports their errors with the usage.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// positional reads a command's flags wherever they stand among its
// arguments (apps update shopa -name X) and returns the other arguments.
func positional(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, err
		} else if err != nil {
			return nil, usageErr("%s: %v", fs.Name(), err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parse is positional for a command taking exactly the arguments named.
func parse(fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	pos, err := positional(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != len(names) {
		want := "no arguments"
		if len(names) > 0 {
			want = strings.Join(names, " ")
		}
		return nil, usageErr("%s takes %s", fs.Name(), want)
	}
	return pos, nil
}

// setFlags is a PATCH body: the flags given, under their JSON names. Lists
// are comma-separated.
func setFlags(fs *flag.FlagSet, fields map[string]string) map[string]any {
	body := map[string]any{}
	fs.Visit(func(f *flag.Flag) {
		name, ok := fields[f.Name]
		if !ok {
			return
		}
		if name == "events" || name == "wechat_appids" {
			body[name] = list(f.Value.String())
		} else {
			body[name] = f.Value.String()
		}
	})
	return body
}

func list(s string) []string {
	out := []string{}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// path joins escaped segments into an absolute path.
func path(segments ...string) string {
	for i, s := range segments {
		segments[i] = url.PathEscape(s)
	}
	return "/" + strings.Join(segments, "/")
}

// local reports whether the stack is on this machine: only then are the
// local stack's keys in the data folder offered to it.
func (c *cli) local() bool {
	u, err := url.Parse(c.base)
	if err != nil {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback())
}

// readLocal reads a JSON file of the local stack's data folder into v.
func (c *cli) readLocal(name string, v any) error {
	p := filepath.Join(c.dataDir, name)
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	return nil
}

func (c *cli) adminKeyOrLocal() (string, error) {
	if c.adminKey != "" {
		return c.adminKey, nil
	}
	if k := c.getenv("PAYFN_ADMIN_KEY"); k != "" {
		return k, nil
	}
	if c.local() {
		var sec struct {
			AdminKey string `json:"admin_key"`
		}
		if err := c.readLocal("local-secrets.json", &sec); err == nil && sec.AdminKey != "" {
			return sec.AdminKey, nil
		}
	}
	return "", usageErr("set -admin-key or PAYFN_ADMIN_KEY (for the local stack, run payfnctl where its %s folder is, or pass -data)", c.dataDir)
}

// admin sends an operator request with the admin key.
func (c *cli) admin(ctx context.Context, method, pth string, body any) error {
	key, err := c.adminKeyOrLocal()
	if err != nil {
		return err
	}
	var raw []byte
	if body != nil {
		if raw, err = json.Marshal(body); err != nil {
			return err
		}
	}
	h := http.Header{}
	h.Set("X-Payfn-Admin-Key", key)
	return c.send(ctx, method, pth, raw, h)
}

// call sends a server-API request signed with an app's API key.
func (c *cli) call(ctx context.Context, args []string) error {
	fs := newFlagSet("call")
	keyID := fs.String("key-id", "", "the app's API key id (default $PAYFN_KEY_ID)")
	secret := fs.String("secret", "", "its secret (default $PAYFN_KEY_SECRET)")
	pos, err := positional(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 || len(pos) > 3 {
		return usageErr("call takes METHOD PATH [JSON]")
	}
	method, pth := strings.ToUpper(pos[0]), pos[1]
	if !strings.HasPrefix(pth, "/") {
		return usageErr("PATH starts with /, as in /v1/products")
	}
	var body []byte
	if len(pos) == 3 {
		body = []byte(pos[2])
		if !json.Valid(body) {
			return usageErr("the request body is not valid JSON")
		}
	}
	if *keyID == "" && *secret == "" {
		*keyID, *secret = c.getenv("PAYFN_KEY_ID"), c.getenv("PAYFN_KEY_SECRET")
	}
	if *keyID == "" && *secret == "" && c.local() {
		var demo struct {
			KeyID     string `json:"api_key_id"`
			KeySecret string `json:"api_key_secret"`
		}
		if err := c.readLocal("demo-app.json", &demo); err == nil {
			*keyID, *secret = demo.KeyID, demo.KeySecret
		}
	}
	if *keyID == "" || *secret == "" {
		return usageErr("call needs -key-id and -secret (or PAYFN_KEY_ID and PAYFN_KEY_SECRET)")
	}

	ts := strconv.FormatInt(time.Now().Unix(), 10)
	n := make([]byte, 16)
	rand.Read(n)
	nonce := hex.EncodeToString(n)
	h := http.Header{}
	h.Set("X-Payfn-Key-Id", *keyID)
	h.Set("X-Payfn-Timestamp", ts)
	h.Set("X-Payfn-Nonce", nonce)
	h.Set("X-Payfn-Signature", app.SignServerRequest(*secret, method, pth, ts, nonce, body))
	return c.send(ctx, method, pth, body, h)
}

// send makes the request and prints the answer: indented JSON on stdout, or
// the status and the error body on stderr (errAnswered).
func (c *cli) send(ctx context.Context, method, pth string, body []byte, h http.Header) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+pth, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = h
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	var out bytes.Buffer
	if json.Indent(&out, raw, "", "  ") != nil {
		out.Reset()
		out.Write(raw)
	}
	if out.Len() > 0 && out.Bytes()[out.Len()-1] != '\n' {
		out.WriteByte('\n')
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(c.stderr, "%s %s: %s\n", method, pth, resp.Status)
		c.stderr.Write(out.Bytes())
		return errAnswered
	}
	_, err = c.stdout.Write(out.Bytes())
	return err
}
