package deploy

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/setup"
)

// secretEnv is what a function's platform gives it to reach its secret,
// when the artifact configures one (names holds PAYFN_SECRET_SOURCE): the
// role's temporary credentials, as Lambda and SCF put them in the
// environment, and the secret's id, pointed at this stack's stand-in. The
// stand-in holds a secret of the function's own with exactly the keys
// setup.SecretKeys names, readable with these credentials only.
func (s *stack) secretEnv(t *testing.T, platform, name string, names []string) []string {
	t.Helper()
	if !slices.Contains(names, "PAYFN_SECRET_SOURCE") {
		return nil
	}
	val := s.values(t)
	content := map[string]string{}
	for _, k := range setup.SecretKeys(setup.Function(name)) {
		content[k] = val[k]
		s.secrets = append(s.secrets, val[k])
	}
	raw, _ := json.Marshal(content)
	key, token := randomText(t), randomText(t)
	s.secrets = append(s.secrets, key, token)
	switch platform {
	case "aws":
		id, ak := "payfn/"+name, "ASIA"+strings.ToUpper(name)
		s.aws.Put(id, string(raw))
		s.aws.Grant(ak, key, token, id)
		return []string{"PAYFN_SECRET_SOURCE=aws-secretsmanager", "PAYFN_SECRET_ID=" + id, "PAYFN_SECRET_ENDPOINT=" + s.aws.URL(),
			"AWS_ACCESS_KEY_ID=" + ak, "AWS_SECRET_ACCESS_KEY=" + key, "AWS_SESSION_TOKEN=" + token}
	case "scf":
		id, sid := "payfn-"+strings.ToLower(name), "AKID"+strings.ToUpper(name)
		s.ssm.Put(id, string(raw))
		s.ssm.Grant(sid, key, token, id)
		return []string{"PAYFN_SECRET_SOURCE=tencent-ssm", "PAYFN_SECRET_ID=" + id, "PAYFN_SECRET_ENDPOINT=" + s.ssm.URL(),
			"TENCENTCLOUD_SECRETID=" + sid, "TENCENTCLOUD_SECRETKEY=" + key, "TENCENTCLOUD_SESSIONTOKEN=" + token}
	}
	t.Fatalf("unknown platform %s", platform)
	return nil
}

func randomText(t *testing.T) string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// noSecretWritten fails if any secret value handed to a function, or any
// of its credentials, appears in what a function process wrote (its whole
// stdout and stderr, debug logs included) or answered.
func (s *stack) noSecretWritten(t *testing.T, answers string) {
	t.Helper()
	if len(s.secrets) == 0 {
		t.Fatal("no function was given a secret to look for")
	}
	var out strings.Builder
	for _, p := range s.procs {
		out.WriteString(p.output.String())
	}
	written := out.String()
	if !strings.Contains(written, `"secret loaded"`) {
		t.Errorf("no function logged fetching its secret")
	}
	if n := leaks(s.secrets, written+answers); n > 0 {
		t.Errorf("%d secret values appear in the functions' output or answers", n)
	}
}

// leaks counts the secrets that appear in text: whole, with newlines
// escaped as JSON writes them, or by one inner line (a PEM body line).
func leaks(secrets []string, text string) int {
	n := 0
	for _, v := range secrets {
		probes := []string{v, strings.ReplaceAll(v, "\n", `\n`)}
		if lines := strings.Split(v, "\n"); len(lines) > 2 {
			probes = append(probes, lines[1])
		}
		for _, p := range probes {
			if len(p) >= 8 && strings.Contains(text, p) {
				n++
				break
			}
		}
	}
	return n
}

func TestLeaksFindsASecretWholeEscapedOrByALine(t *testing.T) {
	_, pemText := merchant(t)
	secrets := []string{pemText, "0123456789abcdef0123456789abcdef"}
	line := strings.Split(pemText, "\n")[1]
	for text, want := range map[string]int{
		`{"msg":"ok"}`: 0,
		`{"err":"bad key 0123456789abcdef0123456789abcdef"}`:      1,
		`{"v":"` + strings.ReplaceAll(pemText, "\n", `\n`) + `"}`: 1,
		"panic: " + line: 1,
		`{"a":"0123456789abcdef0123456789abcdef","b":"` + line + `"}`: 2,
	} {
		if got := leaks(secrets, text); got != want {
			t.Errorf("leaks in %.40q... = %d, want %d", text, got, want)
		}
	}
}
