package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/internal/deploy/nodedeps"
)

// slsAWSDir is the Serverless Framework v3 (AWS provider) variant; its
// package.json pins the framework and package-lock.json every dependency.
var slsAWSDir = filepath.Join(root, "deploy", "serverless-aws")

// installServerless installs the pinned framework (nodedeps.Install: once
// per lockfile, npm's cache first). It skips the calling check only when the
// npm registry cannot be reached and the cache cannot stand in, and never in
// CI, where the registry is expected to answer.
func installServerless(t *testing.T, npm string) (wait func()) {
	t.Helper()
	type outcome struct {
		res nodedeps.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
		defer cancel()
		res, err := nodedeps.Install(ctx, npm, slsAWSDir)
		done <- outcome{res, err}
	}()
	// The install (network) and the build (CPU) overlap; the caller waits
	// before running the framework.
	return func() {
		t.Helper()
		o := <-done
		checkInstall(t, o.res, o.err)
	}
}

func checkInstall(t *testing.T, res nodedeps.Result, err error) {
	t.Helper()
	if errors.Is(err, nodedeps.ErrRegistryUnreachable) {
		if why := nodedeps.MustNotSkip(os.Getenv); why != "" {
			t.Fatalf("installing the Serverless Framework (%s, so no skip): %v", why, err)
		}
		t.Skipf("skipping the Serverless Framework check: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Ran {
		t.Logf("npm ci (registry %s, offline %v) took %s", res.Registry, res.Offline, res.Took.Round(time.Second))
	}
}

// TestServerlessV3PackagesTheAWSVariantOffline runs the pinned `serverless
// package` on deploy/serverless-aws/serverless.yml with no AWS account (dummy
// credentials, telemetry off; packaging calls no AWS API) against the zips
// scripts/build wrote, and checks the CloudFormation it generates: every
// function folder is one provided.al2023 arm64 bootstrap function with its
// route or schedule, exactly the variables it needs and no secret (only the
// Ref of a Secrets Manager secret of its own), and a role of its own that may
// write its logs (kept 90 days) and read that secret, nothing else. It needs
// node and npm; without them it skips.
func TestServerlessV3PackagesTheAWSVariantOffline(t *testing.T) {
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		t.Skip("node and npm are needed to run the Serverless Framework; install Node.js to run this check")
	}
	t.Parallel()
	waitInstall := installServerless(t, npm)
	dist := built(t)
	waitInstall()

	out := t.TempDir()
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		// No phoning home: packaging is offline.
		"SLS_TELEMETRY_DISABLED=1", "SLS_NOTIFICATIONS_MODE=off", "SLS_DEPRECATION_DISABLE=*",
		// The AWS provider wants credentials to exist, never to work.
		"AWS_ACCESS_KEY_ID=AKIAPAYFNTESTONLY000", "AWS_SECRET_ACCESS_KEY=not-a-real-key", "AWS_REGION=ap-east-1",
		// The zips' names are what matters here, not their architecture.
		"PAYFN_AWS_DIST=" + filepath.Join(dist, "aws", goruntime.GOARCH),
	}
	for _, v := range []string{"WECHAT_APPID", "WECHATPAY_MCHID", "WECHATPAY_MCH_CERT_SERIAL", "WECHATPAY_NOTIFY_URL"} {
		env = append(env, v+"="+plausible(t, v))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, node, filepath.Join("node_modules", "serverless", "bin", "serverless.js"),
		"package", "--stage", "test", "--package", out)
	cmd.Dir = slsAWSDir
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("serverless package: %v\n%s", err, b)
	}
	t.Logf("serverless package took %s", time.Since(start).Round(100*time.Millisecond))

	raw, err := os.ReadFile(filepath.Join(out, "cloudformation-template-update-stack.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cf struct {
		Resources map[string]struct {
			Type       string          `json:"Type"`
			Properties json.RawMessage `json:"Properties"`
		} `json:"Resources"`
	}
	if err := json.Unmarshal(raw, &cf); err != nil {
		t.Fatal(err)
	}
	type lambdaProps struct {
		FunctionName  string   `json:"FunctionName"`
		Handler       string   `json:"Handler"`
		Runtime       string   `json:"Runtime"`
		Architectures []string `json:"Architectures"`
		Timeout       int      `json:"Timeout"`
		Role          any      `json:"Role"`
		Environment   struct {
			Variables map[string]any `json:"Variables"`
		} `json:"Environment"`
		Code struct {
			S3Key string `json:"S3Key"`
		} `json:"Code"`
	}
	fns := map[string]lambdaProps{}
	var routes, schedules, logGroups []string
	// roleGrants: per role, the log group pattern and the secret it may read.
	type grants struct{ logs, secret string }
	roleGrants := map[string]grants{}
	for name, r := range cf.Resources {
		switch r.Type {
		case "AWS::Lambda::Function":
			var p lambdaProps
			if err := json.Unmarshal(r.Properties, &p); err != nil {
				t.Fatal(err)
			}
			fns[strings.TrimPrefix(p.FunctionName, "payfn-test-")] = p
		case "AWS::ApiGatewayV2::Route":
			var p struct{ RouteKey string }
			json.Unmarshal(r.Properties, &p)
			routes = append(routes, p.RouteKey)
		case "AWS::ApiGatewayV2::Integration":
			var p struct{ PayloadFormatVersion string }
			json.Unmarshal(r.Properties, &p)
			if p.PayloadFormatVersion != "2.0" {
				t.Errorf("%s: payload format %q, want 2.0 (the event shape shared/runtime/awslambda reads)", name, p.PayloadFormatVersion)
			}
		case "AWS::Events::Rule":
			var p struct{ ScheduleExpression string }
			json.Unmarshal(r.Properties, &p)
			schedules = append(schedules, p.ScheduleExpression)
		case "AWS::Logs::LogGroup":
			var p struct {
				LogGroupName    string
				RetentionInDays int
			}
			json.Unmarshal(r.Properties, &p)
			if p.RetentionInDays <= 0 {
				t.Errorf("log group %s keeps logs forever; set logRetentionInDays", p.LogGroupName)
			}
			logGroups = append(logGroups, p.LogGroupName)
		case "AWS::IAM::Role":
			// Writing its logs and reading its own secret: any other action
			// is more than a function uses.
			var p struct {
				Policies []struct {
					PolicyDocument struct {
						Statement []struct {
							Action   any
							Resource any
						}
					}
				}
				ManagedPolicyArns []any
			}
			if err := json.Unmarshal(r.Properties, &p); err != nil {
				t.Fatal(err)
			}
			if len(p.ManagedPolicyArns) > 0 {
				t.Errorf("role %s has managed policies %v", name, p.ManagedPolicyArns)
			}
			var g grants
			for _, pol := range p.Policies {
				for _, st := range pol.PolicyDocument.Statement {
					res, _ := json.Marshal(st.Resource)
					for _, a := range strings.Fields(strings.Trim(fmt.Sprint(st.Action), "[]")) {
						switch a {
						case "logs:CreateLogStream", "logs:PutLogEvents":
							g.logs = string(res)
						case "secretsmanager:GetSecretValue":
							ref, _ := st.Resource.(map[string]any)["Ref"].(string)
							if ref == "" || g.secret != "" && g.secret != ref {
								t.Errorf("role %s may read %s; a role may read one secret, by Ref", name, res)
							}
							g.secret = ref
						default:
							t.Errorf("role %s allows %s; a function only writes its logs and reads its secret", name, a)
						}
					}
				}
			}
			roleGrants[name] = g
		}
	}
	_, secret := configVars(t)
	var wantRoutes, wantSchedules, wantLogs []string
	for _, f := range functions(t) {
		p, ok := fns[f.Folder]
		if !ok {
			t.Errorf("the packaged stack has no function for functions/%s", f.Folder)
			continue
		}
		wantLogs = append(wantLogs, "/aws/lambda/payfn-test-"+f.Folder)
		if f.Path != "" {
			wantRoutes = append(wantRoutes, gatewayRoutes(t, f)...)
		} else {
			rate, _ := scheduleFor(t, f.Schedule)
			wantSchedules = append(wantSchedules, rate)
		}
		if p.Handler != "bootstrap" || p.Runtime != "provided.al2023" || !slices.Equal(p.Architectures, []string{"arm64"}) || p.Timeout <= 8 {
			t.Errorf("%s: handler %s runtime %s arch %v timeout %d; want bootstrap, provided.al2023, [arm64], > 8s", f.Folder, p.Handler, p.Runtime, p.Architectures, p.Timeout)
		}
		if !strings.HasSuffix(p.Code.S3Key, "/"+f.Folder+".zip") {
			t.Errorf("%s: code %s, want the %s.zip scripts/build wrote", f.Folder, p.Code.S3Key, f.Folder)
		}
		vars := p.Environment.Variables
		checkEnvironment(t, "deploy/serverless-aws", f, slices.Sorted(maps.Keys(vars)))
		for name, v := range vars {
			if secret[name] || name == "WECHATPAY_MCH_CERT_SERIAL" {
				t.Errorf("%s: %s = %v is in the function's configuration; it belongs in its secret", f.Folder, name, v)
			}
			if s, ok := v.(string); ok && strings.Contains(s, "{{resolve:") {
				t.Errorf("%s: %s resolves a secret into the configuration", f.Folder, name)
			}
		}
		if vars["PAYFN_SECRET_SOURCE"] != "aws-secretsmanager" {
			t.Errorf("%s: PAYFN_SECRET_SOURCE = %v, want aws-secretsmanager", f.Folder, vars["PAYFN_SECRET_SOURCE"])
		}
		ownSecret, _ := vars["PAYFN_SECRET_ID"].(map[string]any)["Ref"].(string)
		if cf.Resources[ownSecret].Type != "AWS::SecretsManager::Secret" {
			t.Errorf("%s: PAYFN_SECRET_ID = %v, want the Ref of a secret in the stack", f.Folder, vars["PAYFN_SECRET_ID"])
		}
		var roleName string
		if ga, ok := p.Role.(map[string]any)["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
			roleName, _ = ga[0].(string)
		}
		g, ok := roleGrants[roleName]
		if !ok {
			t.Errorf("%s: role %v is not a role of its own in the stack", f.Folder, p.Role)
		} else if g.secret != ownSecret || !strings.Contains(g.logs, "/aws/lambda/payfn-test-"+f.Folder+":*") {
			t.Errorf("%s: its role may read %q and write logs %s; want only its secret %s and its log group", f.Folder, g.secret, g.logs, ownSecret)
		}
		delete(roleGrants, roleName) // one role per function
	}
	for _, s := range [][]string{routes, schedules, logGroups, wantRoutes, wantSchedules, wantLogs} {
		slices.Sort(s)
	}
	if !slices.Equal(routes, wantRoutes) {
		t.Errorf("routes %v, want %v", routes, wantRoutes)
	}
	if !slices.Equal(schedules, wantSchedules) {
		t.Errorf("schedules %v, want %v", schedules, wantSchedules)
	}
	if !slices.Equal(logGroups, wantLogs) {
		t.Errorf("log groups %v, want %v", logGroups, wantLogs)
	}
}
