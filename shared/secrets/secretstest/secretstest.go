// Package secretstest has stand-ins for the secret stores payfn fetches
// from: a loopback AWS Secrets Manager speaking its JSON protocol and a
// loopback Tencent Cloud SSM speaking API 3.0. Each checks the request's
// signature against the credentials it issued and lets each credential read
// only the secrets it was granted, as a function role's policy does. Tests
// only: never imported by a function binary.
package secretstest

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/secrets"
)

// store is what both stand-ins share: secrets by id, who may read what,
// and an outage switch.
type store struct {
	mu      sync.Mutex
	values  map[string][]string // id -> versions, oldest first
	grants  map[string]grant    // access key -> its secret key, token and readable ids
	down    atomic.Bool
	fetches atomic.Int64
	refused atomic.Int64
}

type grant struct {
	secret, token string
	ids           map[string]bool
}

func newStore() *store {
	return &store{values: map[string][]string{}, grants: map[string]grant{}}
}

// Put stores value (a JSON object's text) as the new current version of id.
func (s *store) put(id, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[id] = append(s.values[id], value)
}

func (s *store) grant(accessKey, secretKey, token string, ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := grant{secret: secretKey, token: token, ids: map[string]bool{}}
	for _, id := range ids {
		g.ids[id] = true
	}
	s.grants[accessKey] = g
}

func (s *store) lookup(accessKey string) (grant, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.grants[accessKey]
	return g, ok
}

func (s *store) versions(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.values[id]...)
}

// AWS is a stand-in for AWS Secrets Manager's GetSecretValue.
type AWS struct {
	*store
	srv    *httptest.Server
	region string
}

// NewAWS starts the stand-in for region on loopback; it stops with the test.
func NewAWS(t testing.TB, region string) *AWS {
	a := &AWS{store: newStore(), region: region}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

// URL is the endpoint to give as PAYFN_SECRET_ENDPOINT.
func (a *AWS) URL() string { return a.srv.URL }

// Put makes value the secret's current version (AWSCURRENT).
func (a *AWS) Put(id, value string) { a.put(id, value) }

// Grant lets the role whose credentials these are read the named secrets.
func (a *AWS) Grant(accessKey, secretKey, sessionToken string, ids ...string) {
	a.grant(accessKey, secretKey, sessionToken, ids...)
}

// SetDown makes every request fail with 503 (or succeed again).
func (a *AWS) SetDown(down bool) { a.down.Store(down) }

// Fetches counts answered GetSecretValue calls; Refused those refused.
func (a *AWS) Fetches() int64 { return a.fetches.Load() }
func (a *AWS) Refused() int64 { return a.refused.Load() }

func (a *AWS) fail(w http.ResponseWriter, status int, typ string) {
	a.refused.Add(1)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": typ})
}

func (a *AWS) serve(w http.ResponseWriter, r *http.Request) {
	if a.down.Load() {
		a.fail(w, http.StatusServiceUnavailable, "ServiceUnavailable")
		return
	}
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.URL.Path != "/" || r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" ||
		r.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
		a.fail(w, http.StatusBadRequest, "UnknownOperationException")
		return
	}
	// Authorization: AWS4-HMAC-SHA256 Credential=AK/date/region/service/aws4_request, SignedHeaders=..., Signature=...
	auth := r.Header.Get("Authorization")
	cred, _, _ := strings.Cut(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 Credential="), "/")
	g, ok := a.lookup(cred)
	if !ok {
		a.fail(w, http.StatusBadRequest, "UnrecognizedClientException")
		return
	}
	if r.Header.Get("X-Amz-Security-Token") != g.token {
		a.fail(w, http.StatusBadRequest, "UnrecognizedClientException")
		return
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || time.Since(when).Abs() > 5*time.Minute {
		a.fail(w, http.StatusBadRequest, "InvalidSignatureException")
		return
	}
	// Re-sign the request as received, with only the headers the client
	// signed, and compare.
	check, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	check.Host = r.Host
	_, rest, _ := strings.Cut(auth, "SignedHeaders=")
	signedList, _, _ := strings.Cut(rest, ",")
	for _, h := range strings.Split(signedList, ";") {
		if h != "host" && h != "x-amz-date" && h != "x-amz-security-token" {
			check.Header.Set(h, r.Header.Get(h))
		}
	}
	secrets.SignAWS(check, body, secrets.AWSCredentials{AccessKeyID: cred, SecretAccessKey: g.secret, SessionToken: g.token}, a.region, "secretsmanager", when)
	if !hmac.Equal([]byte(check.Header.Get("Authorization")), []byte(auth)) {
		a.fail(w, http.StatusBadRequest, "InvalidSignatureException")
		return
	}
	var in struct{ SecretId string }
	if json.Unmarshal(body, &in) != nil || in.SecretId == "" {
		a.fail(w, http.StatusBadRequest, "InvalidParameterException")
		return
	}
	if !g.ids[in.SecretId] {
		a.fail(w, http.StatusBadRequest, "AccessDeniedException")
		return
	}
	vs := a.versions(in.SecretId)
	if len(vs) == 0 {
		a.fail(w, http.StatusBadRequest, "ResourceNotFoundException")
		return
	}
	a.fetches.Add(1)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(map[string]any{
		"ARN":  "arn:aws:secretsmanager:" + a.region + ":123456789012:secret:" + in.SecretId + "-AbCdEf",
		"Name": in.SecretId, "VersionId": "v" + strconv.Itoa(len(vs)), "SecretString": vs[len(vs)-1],
		"VersionStages": []string{"AWSCURRENT"}, "CreatedDate": 1.7e9,
	})
}

// Tencent is a stand-in for Tencent Cloud SSM's ListSecretVersionIds and
// GetSecretValue.
type Tencent struct {
	*store
	srv    *httptest.Server
	region string
}

// NewTencent starts the stand-in for region on loopback.
func NewTencent(t testing.TB, region string) *Tencent {
	s := &Tencent{store: newStore(), region: region}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the endpoint to give as PAYFN_SECRET_ENDPOINT.
func (s *Tencent) URL() string { return s.srv.URL }

// Put adds value as the secret's newest version.
func (s *Tencent) Put(name, value string) { s.put(name, value) }

// Grant lets the execution role whose credentials these are read the
// named secrets.
func (s *Tencent) Grant(secretID, secretKey, token string, names ...string) {
	s.grant(secretID, secretKey, token, names...)
}

// SetDown makes every request fail with 503 (or succeed again).
func (s *Tencent) SetDown(down bool) { s.down.Store(down) }

// Fetches counts answered GetSecretValue calls; Refused those refused.
func (s *Tencent) Fetches() int64 { return s.fetches.Load() }
func (s *Tencent) Refused() int64 { return s.refused.Load() }

func (s *Tencent) answer(w http.ResponseWriter, resp map[string]any) {
	resp["RequestId"] = "req-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"Response": resp})
}

func (s *Tencent) fail(w http.ResponseWriter, code string) {
	s.refused.Add(1)
	s.answer(w, map[string]any{"Error": map[string]string{"Code": code, "Message": code}})
}

func (s *Tencent) serve(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		s.refused.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	action := r.Header.Get("X-TC-Action")
	if r.Method != http.MethodPost || r.Header.Get("X-TC-Version") != "2019-09-23" || r.Header.Get("X-TC-Region") != s.region {
		s.fail(w, "InvalidParameter")
		return
	}
	auth := r.Header.Get("Authorization")
	id, _, _ := strings.Cut(strings.TrimPrefix(auth, "TC3-HMAC-SHA256 Credential="), "/")
	g, ok := s.lookup(id)
	if !ok || r.Header.Get("X-TC-Token") != g.token {
		s.fail(w, "AuthFailure.SecretIdNotFound")
		return
	}
	ts, err := strconv.ParseInt(r.Header.Get("X-TC-Timestamp"), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		s.fail(w, "AuthFailure.SignatureExpire")
		return
	}
	check, _ := http.NewRequest(r.Method, "http://"+r.Host+"/", bytes.NewReader(body))
	check.Host = r.Host
	check.Header.Set("Content-Type", r.Header.Get("Content-Type"))
	secrets.SignTC3(check, body, secrets.TencentCredentials{SecretID: id, SecretKey: g.secret}, "ssm", action, time.Unix(ts, 0))
	if !hmac.Equal([]byte(check.Header.Get("Authorization")), []byte(auth)) {
		s.fail(w, "AuthFailure.SignatureFailure")
		return
	}
	var in struct{ SecretName, VersionId string }
	if json.Unmarshal(body, &in) != nil || in.SecretName == "" {
		s.fail(w, "InvalidParameter")
		return
	}
	if !g.ids[in.SecretName] {
		s.fail(w, "UnauthorizedOperation")
		return
	}
	vs := s.versions(in.SecretName)
	if len(vs) == 0 {
		s.fail(w, "ResourceNotFound")
		return
	}
	switch action {
	case "ListSecretVersionIds":
		var list []map[string]any
		for i := range vs {
			list = append(list, map[string]any{"VersionId": "v" + strconv.Itoa(i+1), "CreateTime": 1700000000 + i})
		}
		s.answer(w, map[string]any{"SecretName": in.SecretName, "Versions": list})
	case "GetSecretValue":
		n, err := strconv.Atoi(strings.TrimPrefix(in.VersionId, "v"))
		if err != nil || n < 1 || n > len(vs) {
			s.fail(w, "ResourceNotFound")
			return
		}
		s.fetches.Add(1)
		s.answer(w, map[string]any{"SecretName": in.SecretName, "VersionId": in.VersionId, "SecretString": vs[n-1]})
	default:
		s.fail(w, "InvalidAction")
	}
}
