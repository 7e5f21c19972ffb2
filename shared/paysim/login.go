package paysim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"
)

// loginCodeLifetime is how long a wx.login code stays usable.
const loginCodeLifetime = 5 * time.Minute

type loginCode struct {
	openid  string
	created time.Time
	used    bool
}

// NewLoginCode returns a fresh wx.login code for openid: single use, valid
// for five minutes, redeemable at /sns/jscode2session.
func (s *Server) NewLoginCode(openid string) string {
	code := randAlnum(32)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = &loginCode{openid: openid, created: s.now()}
	return code
}

type sessionReply struct {
	OpenID     string `json:"openid,omitempty"`
	SessionKey string `json:"session_key,omitempty"`
	ErrCode    int    `json:"errcode,omitempty"`
	ErrMsg     string `json:"errmsg,omitempty"`
}

// handleJSCode2Session is the mini-program login API. WeChat answers errors
// with HTTP 200 and an errcode, and (reportedly) text/plain, so clients must
// decode whatever the content type says.
func (s *Server) handleJSCode2Session(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rep := s.jscode2session(q.Get("appid"), q.Get("secret"), q.Get("js_code"), q.Get("grant_type"))
	w.Header().Set("Content-Type", "text/plain")
	_ = json.NewEncoder(w).Encode(rep)
}

func (s *Server) jscode2session(appid, secret, code, grantType string) sessionReply {
	if !s.bound(appid) {
		return sessionReply{ErrCode: 40013, ErrMsg: "invalid appid"}
	}
	if secret != s.appSecret {
		return sessionReply{ErrCode: 40125, ErrMsg: "invalid appsecret"}
	}
	if grantType != "authorization_code" {
		return sessionReply{ErrCode: 40002, ErrMsg: "invalid grant_type"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[code]
	switch {
	case !ok || s.now().Sub(c.created) > loginCodeLifetime:
		return sessionReply{ErrCode: 40029, ErrMsg: "invalid code"}
	case c.used:
		return sessionReply{ErrCode: 40163, ErrMsg: "code been used"}
	}
	c.used = true
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	s.log.Info("paysim jscode2session")
	return sessionReply{OpenID: c.openid, SessionKey: base64.StdEncoding.EncodeToString(key)}
}
