package secrets

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Tencent Cloud SSM (API 3.0, version 2019-09-23) over HTTPS, signed with
// TC3-HMAC-SHA256 using the SCF execution role's temporary credentials from
// TENCENTCLOUD_SECRETID, TENCENTCLOUD_SECRETKEY and TENCENTCLOUD_SESSIONTOKEN.
// GetSecretValue needs a version id, so each fetch first lists the versions
// and takes the newest: a rotation is PutSecretValue with a new version.
type tencentSource struct {
	name     string
	endpoint *url.URL
	getenv   func(string) string
	hc       *http.Client
	now      func() time.Time
}

const ssmVersion = "2019-09-23"

// newTencent checks the endpoint; the region and credentials are read at
// each fetch (the SCF runtime sets them).
func newTencent(o Options) (*tencentSource, error) {
	ep := o.Endpoint
	if ep == "" {
		ep = "https://ssm.tencentcloudapi.com"
	}
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("tencent-ssm: endpoint %q is not a URL", ep)
	}
	return &tencentSource{name: o.ID, endpoint: u, getenv: o.Getenv, hc: o.HTTPClient, now: o.Now}, nil
}

// TencentCredentials are what TC3-HMAC-SHA256 signs with.
type TencentCredentials struct {
	SecretID, SecretKey, Token string
}

func (s *tencentSource) Fetch(ctx context.Context) (Secret, error) {
	creds := TencentCredentials{s.getenv("TENCENTCLOUD_SECRETID"), s.getenv("TENCENTCLOUD_SECRETKEY"), s.getenv("TENCENTCLOUD_SESSIONTOKEN")}
	if creds.SecretID == "" || creds.SecretKey == "" {
		return Secret{}, errors.New("tencent-ssm: no credentials in TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY (give the function an execution role)")
	}
	region := s.getenv("TENCENTCLOUD_REGION")
	if region == "" {
		return Secret{}, errors.New("tencent-ssm: TENCENTCLOUD_REGION is not set")
	}
	var list struct {
		Versions []struct {
			VersionID  string `json:"VersionId"`
			CreateTime int64  `json:"CreateTime"`
		} `json:"Versions"`
	}
	if err := s.call(ctx, creds, region, "ListSecretVersionIds", map[string]any{"SecretName": s.name}, &list); err != nil {
		return Secret{}, err
	}
	newest := -1
	for i, v := range list.Versions {
		if newest < 0 || v.CreateTime >= list.Versions[newest].CreateTime {
			newest = i
		}
	}
	if newest < 0 {
		return Secret{}, fmt.Errorf("tencent-ssm %s: the secret has no version", s.name)
	}
	var got struct {
		SecretString *string `json:"SecretString"`
	}
	if err := s.call(ctx, creds, region, "GetSecretValue", map[string]any{"SecretName": s.name, "VersionId": list.Versions[newest].VersionID}, &got); err != nil {
		return Secret{}, err
	}
	if got.SecretString == nil {
		return Secret{}, fmt.Errorf("tencent-ssm GetSecretValue %s: the answer has no SecretString", s.name)
	}
	sec, err := Parse([]byte(*got.SecretString))
	if err != nil {
		return Secret{}, fmt.Errorf("tencent-ssm %s: %w", s.name, err)
	}
	return sec, nil
}

// call posts one API 3.0 action and decodes its Response into out.
func (s *tencentSource) call(ctx context.Context, creds TencentCredentials, region, action string, params map[string]any, out any) error {
	body, _ := json.Marshal(params)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("tencent-ssm request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-TC-Version", ssmVersion)
	req.Header.Set("X-TC-Region", region)
	if creds.Token != "" {
		req.Header.Set("X-TC-Token", creds.Token)
	}
	SignTC3(req, body, creds, "ssm", action, s.now())
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("tencent-ssm %s %s: %w: %s", action, s.name, ErrUnavailable, transportReason(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("tencent-ssm %s %s: %w: HTTP %d", action, s.name, ErrUnavailable, resp.StatusCode)
	}
	var env struct {
		Response json.RawMessage `json:"Response"`
	}
	var e struct {
		Error *struct {
			Code string `json:"Code"`
		} `json:"Error"`
	}
	if json.Unmarshal(raw, &env) != nil || json.Unmarshal(env.Response, &e) != nil {
		return fmt.Errorf("tencent-ssm %s %s: %w: the answer is not API 3.0 JSON", action, s.name, ErrUnavailable)
	}
	if e.Error != nil {
		return fmt.Errorf("tencent-ssm %s %s: %w: %s", action, s.name, ErrUnavailable, errorType(e.Error.Code))
	}
	if err := json.Unmarshal(env.Response, out); err != nil {
		return fmt.Errorf("tencent-ssm %s %s: unexpected answer", action, s.name)
	}
	return nil
}

// SignTC3 adds X-TC-Action, X-TC-Timestamp, Host and a TC3-HMAC-SHA256
// Authorization header to req (a POST of body), signing content-type, host
// and x-tc-action as the API 3.0 documentation's example does.
func SignTC3(req *http.Request, body []byte, c TencentCredentials, service, action string, now time.Time) {
	ts := now.Unix()
	day := time.Unix(ts, 0).UTC().Format("2006-01-02")
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	req.Header.Set("X-TC-Action", action)
	req.Header.Set("X-TC-Timestamp", strconv.FormatInt(ts, 10))
	canonical := TC3Canonical(req.Method, req.Header.Get("Content-Type"), host, action, body)
	scope := day + "/" + service + "/tc3_request"
	toSign := "TC3-HMAC-SHA256\n" + strconv.FormatInt(ts, 10) + "\n" + scope + "\n" + hexSHA256([]byte(canonical))
	key := hmacSHA256([]byte("TC3"+c.SecretKey), day)
	key = hmacSHA256(key, service)
	key = hmacSHA256(key, "tc3_request")
	sig := hex.EncodeToString(hmacSHA256(key, toSign))
	req.Header.Set("Authorization", "TC3-HMAC-SHA256 Credential="+c.SecretID+"/"+scope+", SignedHeaders=content-type;host;x-tc-action, Signature="+sig)
}

// TC3Canonical is the canonical request TC3-HMAC-SHA256 signs for a POST
// to "/" with no query string.
func TC3Canonical(method, contentType, host, action string, body []byte) string {
	return method + "\n/\n\n" +
		"content-type:" + contentType + "\nhost:" + host + "\nx-tc-action:" + strings.ToLower(action) + "\n\n" +
		"content-type;host;x-tc-action\n" + hexSHA256(body)
}
