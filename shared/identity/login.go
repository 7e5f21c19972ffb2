package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/payfn/payfn/shared/app"
)

// DefaultLoginBaseURL is WeChat's mini-program server API.
const DefaultLoginBaseURL = "https://api.weixin.qq.com"

// CodeExchange calls jscode2session to turn a wx.login code into an openid.
// The session_key WeChat also returns is never kept, returned or logged.
type CodeExchange struct {
	baseURL   string
	appID     string
	appSecret string
	client    *http.Client
}

// CodeExchangeOptions configures a CodeExchange.
type CodeExchangeOptions struct {
	BaseURL    string // default DefaultLoginBaseURL; the simulator's URL locally
	AppID      string
	AppSecret  string
	HTTPClient *http.Client // default: 5 s timeout
}

// NewCodeExchange validates the options. It does no network I/O.
func NewCodeExchange(o CodeExchangeOptions) (*CodeExchange, error) {
	if o.AppID == "" || o.AppSecret == "" {
		return nil, errors.New("jscode2session needs an appid and an app secret")
	}
	if o.BaseURL == "" {
		o.BaseURL = DefaultLoginBaseURL
	}
	if _, err := url.Parse(o.BaseURL); err != nil {
		return nil, fmt.Errorf("login base url: %w", err)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	return &CodeExchange{baseURL: strings.TrimRight(o.BaseURL, "/"), appID: o.AppID, appSecret: o.AppSecret, client: o.HTTPClient}, nil
}

type code2SessionReply struct {
	OpenID  string `json:"openid"`
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// Exchange returns the openid for code. A code WeChat rejects (invalid, used,
// expired, or a blocked user) wraps app.ErrBadLoginCode; WeChat being busy or
// unreachable wraps app.ErrChannelUnavailable.
func (c *CodeExchange) Exchange(ctx context.Context, code string) (string, error) {
	q := url.Values{}
	q.Set("appid", c.appID)
	q.Set("secret", c.appSecret)
	q.Set("js_code", code)
	q.Set("grant_type", "authorization_code")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/sns/jscode2session?"+q.Encode(), nil)
	if err != nil {
		return "", fmt.Errorf("jscode2session request: %w", err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		// The URL holds the app secret: report the failure without it.
		return "", fmt.Errorf("jscode2session: %s: %w", transportReason(err), app.ErrChannelUnavailable)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("jscode2session read reply: %w", app.ErrChannelUnavailable)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("jscode2session: HTTP %d: %w", resp.StatusCode, app.ErrChannelUnavailable)
	}
	// WeChat may label JSON as text/plain, so the body is decoded whatever
	// its content type.
	var r code2SessionReply
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", fmt.Errorf("jscode2session: reply is not JSON: %w", app.ErrChannelUnavailable)
	}
	switch r.ErrCode {
	case 0:
		if r.OpenID == "" {
			return "", fmt.Errorf("jscode2session: reply has no openid: %w", app.ErrChannelUnavailable)
		}
		return r.OpenID, nil
	case -1, 45011: // system busy; rate limited
		return "", fmt.Errorf("jscode2session: errcode %d: %w", r.ErrCode, app.ErrChannelUnavailable)
	case 40029, 40163, 40226: // invalid code; code used; high-risk user
		return "", fmt.Errorf("jscode2session: errcode %d: %w", r.ErrCode, app.ErrBadLoginCode)
	default: // e.g. 40013 invalid appid, 40125 invalid secret: our configuration
		return "", fmt.Errorf("jscode2session: errcode %d %q", r.ErrCode, r.ErrMsg)
	}
}

// transportReason names a transport failure without the request URL.
func transportReason(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		if uerr.Timeout() {
			return "timeout"
		}
		return uerr.Err.Error()
	}
	return "transport error"
}
