package identity

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/payfn/payfn/shared/app"
)

// Platform identity: when a mini-program calls payfn through the platform
// (wx.cloud.callFunction, wx.cloud.callContainer, wx.cloud.callHTTPFunction)
// the platform itself authenticates the user and tells the function who
// calls, so there is no login round trip and no session token. Where it says
// so depends on the runtime:
//
//   - a CloudBase (SCF) event function gets the caller in the invocation's
//     own environment (FunctionContext.Environment): WX_OPENID, WX_APPID,
//     WX_UNIONID, valid only when listed in that invocation's
//     WX_CONTEXT_KEYS, and TCB_SOURCE, TCB_ENV (wx-server-sdk's
//     getWXContext reads the same keys);
//   - a CloudBase HTTP function or a WeChat Cloud Hosting container gets the
//     X-WX-* headers the platform's gateway sets.
//
// The runtime adapter reads the caller from wherever its platform puts it
// and carries it in the request context (WithPlatformCaller); nothing else
// may. A deployment chooses platform identity by configuration
// (PAYFN_IDENTITY=platform): Platform.Authenticate then decides whether the
// caller may use the client functions. In token mode the context is never
// read, so a client that sends X-WX-OPENID itself chooses nothing.

// The headers the platform's gateway sets on a request from a mini-program
// (WeChat Cloud Hosting, "容器内微信信息"; CloudBase HTTP functions).
const (
	HeaderOpenID  = "X-Wx-Openid"
	HeaderAppID   = "X-Wx-Appid"
	HeaderUnionID = "X-Wx-Unionid"
	HeaderSource  = "X-Wx-Source"
	HeaderEnv     = "X-Wx-Env"
)

// The invocation environment keys of a CloudBase event function.
const (
	EnvContextKeys = "WX_CONTEXT_KEYS" // comma-separated: which WX_ keys this invocation carries
	EnvOpenID      = "WX_OPENID"
	EnvAppID       = "WX_APPID"
	EnvUnionID     = "WX_UNIONID"
	EnvSource      = "TCB_SOURCE"
	EnvEnv         = "TCB_ENV"
	envNamespace   = "SCF_NAMESPACE" // getWXContext's fallback for ENV
)

// ClientSources are the call sources that are a mini-program client: the
// WeChat app (wx_client) and WeChat DevTools (wx_devtools), both with a
// signed-in user of the mini-program. Every other source is refused: an
// HTTP API call (wx_http), a timer (wx_trigger), a payment callback
// (wx_paycallback), another cloud function (scf, or a chain such as
// "wx_client,scf"), local debugging, an unknown one, or none at all.
var ClientSources = []string{"wx_client", "wx_devtools"}

// PlatformCaller is the caller as the platform names it. The zero value is
// no caller.
type PlatformCaller struct {
	OpenID  string // the user's openid under AppID
	AppID   string // the mini-program the call comes from
	UnionID string // set only when WeChat gives one
	Source  string // what made the call (ClientSources)
	Env     string // the CloudBase environment that received it
}

// PlatformCallerFromEnvironment reads the caller from one invocation's
// environment (never the process's: scf-go-lib copies each invocation's
// environment into it and never clears it, so a later call without a caller
// would find the previous caller there). A WX_ key counts only when the
// invocation's WX_CONTEXT_KEYS names it, as in getWXContext.
func PlatformCallerFromEnvironment(env map[string]string) PlatformCaller {
	var listed []string
	for _, k := range strings.Split(env[EnvContextKeys], ",") {
		listed = append(listed, strings.TrimSpace(k))
	}
	get := func(k string) string {
		if !slices.Contains(listed, k) {
			return ""
		}
		return env[k]
	}
	c := PlatformCaller{OpenID: get(EnvOpenID), AppID: get(EnvAppID), UnionID: get(EnvUnionID), Source: env[EnvSource], Env: env[EnvEnv]}
	if c.Env == "" {
		c.Env = env[envNamespace]
	}
	return c
}

// PlatformCallerFromHeader reads the caller from the X-WX-* headers. A
// header given more than once counts as absent: the gateway sets each once,
// so two values mean one of them came from somewhere else.
func PlatformCallerFromHeader(h http.Header) PlatformCaller {
	one := func(k string) string {
		if vs := h.Values(k); len(vs) == 1 {
			return strings.TrimSpace(vs[0])
		}
		return ""
	}
	return PlatformCaller{OpenID: one(HeaderOpenID), AppID: one(HeaderAppID), UnionID: one(HeaderUnionID), Source: one(HeaderSource), Env: one(HeaderEnv)}
}

type platformKey struct{}

// WithPlatformCaller returns ctx carrying c. Only a runtime adapter calls
// it, with what its platform vouches for.
func WithPlatformCaller(ctx context.Context, c PlatformCaller) context.Context {
	return context.WithValue(ctx, platformKey{}, c)
}

// PlatformCallerFrom returns the caller an adapter put in ctx.
func PlatformCallerFrom(ctx context.Context) (PlatformCaller, bool) {
	c, ok := ctx.Value(platformKey{}).(PlatformCaller)
	return c, ok
}

// openIDPattern bounds what an openid may be before it becomes an order's
// owner: WeChat's are 28 characters of base64url.
var openIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// Platform authenticates the client functions' callers in platform mode.
type Platform struct {
	appID string
}

// NewPlatform returns the authenticator of a deployment whose mini-program
// is appID (WECHAT_APPID): calls from any other appid are refused, since
// an openid means nothing outside its appid and the prepay is made under
// appID.
func NewPlatform(appID string) (*Platform, error) {
	if appID == "" {
		return nil, fmt.Errorf("platform identity needs the mini-program's appid (WECHAT_APPID)")
	}
	return &Platform{appID: appID}, nil
}

// Authenticate returns the openid of the caller the adapter put in ctx:
// refused unless there is one, it comes from a mini-program client
// (ClientSources) of this deployment's appid, and its openid is well
// formed. Nothing of the request itself is consulted.
// Errors: UNAUTHENTICATED.
func (p *Platform) Authenticate(ctx context.Context) (string, error) {
	c, _ := PlatformCallerFrom(ctx)
	refuse := func(msg string) (string, error) {
		return "", app.Errorf(app.KindUnauthenticated, app.CodeUnauthenticated, "%s", msg)
	}
	switch {
	case c.OpenID == "":
		return refuse("no platform identity: call this function from the mini-program through the platform (wx.cloud.callFunction or wx.cloud.callContainer)")
	case !slices.Contains(ClientSources, c.Source):
		return refuse("the platform says this call does not come from a mini-program client")
	case c.AppID != p.appID:
		return refuse("this call comes from another mini-program than the one this deployment serves")
	case !openIDPattern.MatchString(c.OpenID):
		return refuse("the platform identity is malformed")
	}
	return c.OpenID, nil
}
