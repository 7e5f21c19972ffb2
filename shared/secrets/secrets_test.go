package secrets_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/secrets"
	"github.com/payfn/payfn/shared/secrets/secretstest"
)

const value = `{"PAYFN_SESSION_SECRET":"s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t"}`

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// standIn is either store, behind one face for the table below.
type standIn interface {
	URL() string
	Put(id, value string)
	Grant(key, secret, token string, ids ...string)
	SetDown(bool)
}

func TestSourcesFetchFromTheStandInsAndFailWithoutTheSecret(t *testing.T) {
	aws := secretstest.NewAWS(t, "ap-east-1")
	ssm := secretstest.NewTencent(t, "ap-guangzhou")
	cases := []struct {
		kind  string
		store standIn
		env   func(key, secret, token string) map[string]string
	}{
		{"aws-secretsmanager", aws, func(k, s, tok string) map[string]string {
			return map[string]string{"AWS_REGION": "ap-east-1", "AWS_ACCESS_KEY_ID": k, "AWS_SECRET_ACCESS_KEY": s, "AWS_SESSION_TOKEN": tok}
		}},
		{"tencent-ssm", ssm, func(k, s, tok string) map[string]string {
			return map[string]string{"TENCENTCLOUD_REGION": "ap-guangzhou", "TENCENTCLOUD_SECRETID": k, "TENCENTCLOUD_SECRETKEY": s, "TENCENTCLOUD_SESSIONTOKEN": tok}
		}},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			c.store.Put("payfn/pay", value)
			c.store.Put("payfn/login", `{"WECHAT_APPSECRET":"other-function-secret"}`)
			c.store.Grant("AKPAY", "pay-role-key", "pay-token", "payfn/pay")
			fetch := func(id string, e map[string]string) (secrets.Secret, error) {
				src, err := secrets.New(secrets.Options{Kind: c.kind, ID: id, Endpoint: c.store.URL(), Getenv: env(e)})
				if err != nil {
					t.Fatal(err)
				}
				return src.Fetch(context.Background())
			}
			got, err := fetch("payfn/pay", c.env("AKPAY", "pay-role-key", "pay-token"))
			if err != nil || got.Values["PAYFN_SESSION_SECRET"] != "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t" || got.Version == "" {
				t.Fatalf("fetch: %+v, %v", got, err)
			}
			c.store.Put("payfn/pay", strings.Replace(value, "s3cr3t", "n3w", 1))
			rotated, err := fetch("payfn/pay", c.env("AKPAY", "pay-role-key", "pay-token"))
			if err != nil || rotated.Version == got.Version || !strings.HasPrefix(rotated.Values["PAYFN_SESSION_SECRET"], "n3w") {
				t.Fatalf("after a new version: %+v, %v", rotated, err)
			}
			for name, f := range map[string]func() error{
				"another function's secret": func() error { _, err := fetch("payfn/login", c.env("AKPAY", "pay-role-key", "pay-token")); return err },
				"a wrong secret key":        func() error { _, err := fetch("payfn/pay", c.env("AKPAY", "guess", "pay-token")); return err },
				"a wrong session token":     func() error { _, err := fetch("payfn/pay", c.env("AKPAY", "pay-role-key", "other")); return err },
				"no credentials":            func() error { _, err := fetch("payfn/pay", c.env("", "", "")); return err },
				"an outage": func() error {
					c.store.SetDown(true)
					defer c.store.SetDown(false)
					_, err := fetch("payfn/pay", c.env("AKPAY", "pay-role-key", "pay-token"))
					if !errors.Is(err, secrets.ErrUnavailable) {
						t.Errorf("an outage: %v, want ErrUnavailable", err)
					}
					return err
				},
			} {
				err := f()
				if err == nil {
					t.Errorf("%s: fetched", name)
					continue
				}
				for _, s := range []string{"s3cr3t", "n3w", "other-function-secret", "pay-role-key"} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("%s: the error %q shows a secret", name, err)
					}
				}
			}
		})
	}
}

func TestFileSourceAndParse(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secret.json")
	if err := os.WriteFile(p, []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	src, _ := secrets.New(secrets.Options{Kind: "file", ID: p})
	if s, err := src.Fetch(context.Background()); err != nil || s.Values["PAYFN_SESSION_SECRET"] == "" {
		t.Fatalf("file: %+v, %v", s, err)
	}
	for _, bad := range []string{`not json s3cr3t`, `["s3cr3t"]`, `{"K": 5}`, `null`} {
		_, err := secrets.Parse([]byte(bad))
		if err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Parse(%q): %v", bad, err)
		}
	}
}
