package identity_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/identity"
)

const appID = "wx1234567890abcdef"

func TestEnvironmentCountsOnlyTheKeysTheInvocationLists(t *testing.T) {
	env := map[string]string{
		"WX_CONTEXT_KEYS": "WX_OPENID, WX_APPID",
		"WX_OPENID":       "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
		"WX_APPID":        appID,
		"WX_UNIONID":      "unlisted-so-not-this-call's", // e.g. left by an earlier call
		"TCB_SOURCE":      "wx_client",
		"SCF_NAMESPACE":   "prod-1a2b",
	}
	got := identity.PlatformCallerFromEnvironment(env)
	want := identity.PlatformCaller{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", AppID: appID, Source: "wx_client", Env: "prod-1a2b"}
	if got != want {
		t.Errorf("caller = %+v, want %+v", got, want)
	}
	// Without WX_CONTEXT_KEYS no WX_ key counts, as in getWXContext.
	delete(env, "WX_CONTEXT_KEYS")
	if got := identity.PlatformCallerFromEnvironment(env); got.OpenID != "" || got.AppID != "" {
		t.Errorf("caller without WX_CONTEXT_KEYS = %+v, want no openid or appid", got)
	}
}

func TestHeadersNamedTwiceCountAsAbsent(t *testing.T) {
	h := http.Header{}
	h.Set("x-wx-openid", "o-1")
	h.Set("X-WX-APPID", appID)
	h.Set("X-WX-SOURCE", "wx_client")
	h.Set("X-WX-ENV", "prod-1a2b")
	got := identity.PlatformCallerFromHeader(h)
	if want := (identity.PlatformCaller{OpenID: "o-1", AppID: appID, Source: "wx_client", Env: "prod-1a2b"}); got != want {
		t.Errorf("caller = %+v, want %+v", got, want)
	}
	h.Add("X-Wx-Openid", "o-2")
	if got := identity.PlatformCallerFromHeader(h); got.OpenID != "" {
		t.Errorf("two X-WX-OPENID values gave openid %q, want none", got.OpenID)
	}
}

func TestPlatformAuthenticatesOnlyAMiniProgramClientOfItsAppID(t *testing.T) {
	p, err := identity.NewPlatform(appID)
	if err != nil {
		t.Fatal(err)
	}
	good := identity.PlatformCaller{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", AppID: appID, Source: "wx_client"}
	with := func(f func(*identity.PlatformCaller)) context.Context {
		c := good
		f(&c)
		return identity.WithPlatformCaller(context.Background(), c)
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		ok   bool
	}{
		{"mini-program", with(func(*identity.PlatformCaller) {}), true},
		{"devtools", with(func(c *identity.PlatformCaller) { c.Source = "wx_devtools" }), true},
		{"no caller in the context", context.Background(), false},
		{"no openid", with(func(c *identity.PlatformCaller) { c.OpenID = "" }), false},
		{"http api", with(func(c *identity.PlatformCaller) { c.Source = "wx_http" }), false},
		{"payment callback", with(func(c *identity.PlatformCaller) { c.Source = "wx_paycallback" }), false},
		{"relayed by another function", with(func(c *identity.PlatformCaller) { c.Source = "wx_client,scf" }), false},
		{"no source", with(func(c *identity.PlatformCaller) { c.Source = "" }), false},
		{"another mini-program", with(func(c *identity.PlatformCaller) { c.AppID = "wxfedcba9876543210" }), false},
		{"no appid", with(func(c *identity.PlatformCaller) { c.AppID = "" }), false},
		{"malformed openid", with(func(c *identity.PlatformCaller) { c.OpenID = "o 1\n" }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			openid, err := p.Authenticate(tc.ctx)
			if tc.ok {
				if err != nil || openid != good.OpenID {
					t.Errorf("Authenticate = %q, %v; want %q", openid, err, good.OpenID)
				}
				return
			}
			if e := app.ErrorOf(err); err == nil || e.Kind != app.KindUnauthenticated || e.Code != app.CodeUnauthenticated || openid != "" {
				t.Errorf("Authenticate = %q, %v; want UNAUTHENTICATED", openid, err)
			}
		})
	}
	if _, err := identity.NewPlatform(""); err == nil {
		t.Error("NewPlatform accepted no appid")
	}
}
