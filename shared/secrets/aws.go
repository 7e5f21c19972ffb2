package secrets

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// AWS Secrets Manager over its JSON protocol (POST with X-Amz-Target:
// secretsmanager.GetSecretValue), signed with Signature Version 4 using the
// Lambda role's credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN. Chosen over the SDK (megabytes per binary for one call)
// and over the Parameters and Secrets extension (a layer to deploy per
// region, with a cache of its own that would delay rotations further).
type awsSource struct {
	secretID string
	endpoint *url.URL // nil: the region's
	getenv   func(string) string
	hc       *http.Client
	now      func() time.Time
}

// newAWS checks what it can without the runtime's environment: the region
// and credentials are read at each fetch (Lambda sets them).
func newAWS(o Options) (*awsSource, error) {
	s := &awsSource{secretID: o.ID, getenv: o.Getenv, hc: o.HTTPClient, now: o.Now}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("aws-secretsmanager: endpoint %q is not a URL", o.Endpoint)
		}
		s.endpoint = u
	}
	return s, nil
}

// where returns the region and the endpoint to call.
func (s *awsSource) where() (string, *url.URL, error) {
	region := s.getenv("AWS_REGION")
	if region == "" {
		region = s.getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		return "", nil, errors.New("aws-secretsmanager: AWS_REGION is not set")
	}
	if s.endpoint != nil {
		return region, s.endpoint, nil
	}
	suffix := "amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		suffix = "amazonaws.com.cn"
	}
	return region, &url.URL{Scheme: "https", Host: "secretsmanager." + region + "." + suffix, Path: "/"}, nil
}

// AWSCredentials are what SigV4 signs with.
type AWSCredentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

func (s *awsSource) Fetch(ctx context.Context) (Secret, error) {
	creds := AWSCredentials{s.getenv("AWS_ACCESS_KEY_ID"), s.getenv("AWS_SECRET_ACCESS_KEY"), s.getenv("AWS_SESSION_TOKEN")}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return Secret{}, errors.New("aws-secretsmanager: no credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (give the function a role)")
	}
	region, endpoint, err := s.where()
	if err != nil {
		return Secret{}, err
	}
	body, _ := json.Marshal(map[string]string{"SecretId": s.secretID})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.String(), bytes.NewReader(body))
	if err != nil {
		return Secret{}, fmt.Errorf("aws-secretsmanager request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
	SignAWS(req, body, creds, region, "secretsmanager", s.now())
	resp, err := s.hc.Do(req)
	if err != nil {
		return Secret{}, fmt.Errorf("aws-secretsmanager GetSecretValue %s: %w: %s", s.secretID, ErrUnavailable, transportReason(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Secret{}, fmt.Errorf("aws-secretsmanager GetSecretValue %s: %w: reading the answer", s.secretID, ErrUnavailable)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type string `json:"__type"`
		}
		_ = json.Unmarshal(raw, &e)
		return Secret{}, fmt.Errorf("aws-secretsmanager GetSecretValue %s: %w: HTTP %d %s", s.secretID, ErrUnavailable, resp.StatusCode, errorType(e.Type))
	}
	var out struct {
		SecretString *string
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.SecretString == nil {
		return Secret{}, fmt.Errorf("aws-secretsmanager GetSecretValue %s: the answer has no SecretString", s.secretID)
	}
	sec, err := Parse([]byte(*out.SecretString))
	if err != nil {
		return Secret{}, fmt.Errorf("aws-secretsmanager %s: %w", s.secretID, err)
	}
	return sec, nil
}

// errorType keeps an AWS error type short and printable
// ("com.amazonaws...#ResourceNotFoundException" -> the name after '#').
func errorType(t string) string {
	if i := strings.LastIndexByte(t, '#'); i >= 0 {
		t = t[i+1:]
	}
	if t == "" {
		return "(no error type)"
	}
	if len(t) > 64 {
		t = t[:64]
	}
	return t
}

// transportReason describes a transport error without its URL.
func transportReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return err.Error()
}

// SignAWS adds X-Amz-Date, X-Amz-Security-Token (when there is a session
// token) and a Signature Version 4 Authorization header to req, whose body
// is body. It signs every header set so far plus host.
func SignAWS(req *http.Request, body []byte, c AWSCredentials, region, service string, now time.Time) {
	t := now.UTC()
	amzDate, day := t.Format("20060102T150405Z"), t.Format("20060102")
	req.Header.Set("X-Amz-Date", amzDate)
	if c.SessionToken != "" {
		req.Header.Set("X-Amz-Security-Token", c.SessionToken)
	}
	canonical, signed := awsCanonical(req, body)
	scope := day + "/" + region + "/" + service + "/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hexSHA256([]byte(canonical))
	key := hmacSHA256([]byte("AWS4"+c.SecretAccessKey), day)
	for _, part := range []string{region, service, "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	sig := hex.EncodeToString(hmacSHA256(key, toSign))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+c.AccessKeyID+"/"+scope+", SignedHeaders="+signed+", Signature="+sig)
}

// awsCanonical is SigV4's canonical request of req and its signed-header
// list. Query parameters are sorted; the path is used as sent (Secrets
// Manager's JSON protocol always posts to "/").
func awsCanonical(req *http.Request, body []byte) (canonical, signedHeaders string) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	hdr := map[string]string{"host": host}
	for k, v := range req.Header {
		lk := strings.ToLower(k)
		if lk == "authorization" || lk == "user-agent" || lk == "content-length" {
			continue
		}
		hdr[lk] = strings.Join(strings.Fields(strings.Join(v, ",")), " ")
	}
	names := make([]string, 0, len(hdr))
	for k := range hdr {
		names = append(names, k)
	}
	sort.Strings(names)
	var ch strings.Builder
	for _, k := range names {
		ch.WriteString(k + ":" + hdr[k] + "\n")
	}
	path := req.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	q := req.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var qs []string
	for _, k := range keys {
		vs := q[k]
		sort.Strings(vs)
		for _, v := range vs {
			qs = append(qs, awsEscape(k)+"="+awsEscape(v))
		}
	}
	signedHeaders = strings.Join(names, ";")
	canonical = req.Method + "\n" + path + "\n" + strings.Join(qs, "&") + "\n" + ch.String() + "\n" + signedHeaders + "\n" + hexSHA256(body)
	return canonical, signedHeaders
}

// awsEscape is RFC 3986 percent-encoding as SigV4 wants it.
func awsEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
