package deploy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/serverless"
	"github.com/awslabs/goformation/v7/intrinsics"
	"github.com/awslabs/goformation/v7/schema"
	"github.com/xeipuuv/gojsonschema"

	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/setup"
)

// samTemplate is template.yaml as CloudFormation would see it after SAM's
// Globals are merged, with intrinsic functions kept (goformation encodes each
// one as a base64 string in place; decode them with intrinsic).
type samTemplate struct {
	*cloudformation.Template
	json []byte // the template before merging, as validated by the schema
}

var (
	tmplOnce sync.Once
	tmpl     samTemplate
	tmplErr  error
)

func loadTemplate(t *testing.T) samTemplate {
	t.Helper()
	tmplOnce.Do(func() { tmpl, tmplErr = parseTemplate(filepath.Join(root, "template.yaml")) })
	if tmplErr != nil {
		t.Fatal(tmplErr)
	}
	return tmpl
}

func parseTemplate(path string) (samTemplate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return samTemplate{}, err
	}
	// EncoderIntrinsics keeps every intrinsic (Ref, Fn::Sub, Fn::GetAtt, ...)
	// instead of resolving it against parameter defaults, so the checks see
	// what CloudFormation will evaluate.
	js, err := intrinsics.ProcessYAML(raw, &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: cloudformation.EncoderIntrinsics})
	if err != nil {
		return samTemplate{}, fmt.Errorf("template.yaml: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(js, &doc); err != nil {
		return samTemplate{}, err
	}
	mergeGlobals(doc)
	merged, err := json.Marshal(doc)
	if err != nil {
		return samTemplate{}, err
	}
	t := &cloudformation.Template{}
	if err := json.Unmarshal(merged, t); err != nil {
		return samTemplate{}, fmt.Errorf("template.yaml does not decode into goformation's types: %w", err)
	}
	return samTemplate{Template: t, json: js}, nil
}

// mergeGlobals applies Globals.Function to every AWS::Serverless::Function
// the way SAM does: maps merge key by key with the resource winning, lists
// are the global items followed by the resource's, other values are the
// resource's when it sets them.
func mergeGlobals(doc map[string]any) {
	globals, _ := doc["Globals"].(map[string]any)
	fnGlobals, _ := globals["Function"].(map[string]any)
	delete(doc, "Globals")
	resources, _ := doc["Resources"].(map[string]any)
	for _, r := range resources {
		res, _ := r.(map[string]any)
		if res["Type"] != "AWS::Serverless::Function" {
			continue
		}
		props, _ := res["Properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
			res["Properties"] = props
		}
		for k, g := range fnGlobals {
			props[k] = mergeValue(g, props[k])
		}
	}
}

func mergeValue(global, local any) any {
	if local == nil {
		return global
	}
	switch g := global.(type) {
	case map[string]any:
		l, ok := local.(map[string]any)
		if !ok {
			return local
		}
		out := maps.Clone(g)
		for k, v := range l {
			out[k] = mergeValue(g[k], v)
		}
		return out
	case []any:
		if l, ok := local.([]any); ok {
			return append(slices.Clone(g), l...)
		}
	}
	return local
}

// intrinsic decodes a value goformation encoded from an intrinsic function:
// it returns the function's name ("Ref", "Fn::Sub", ...) and its argument.
func intrinsic(s string) (name string, arg any, ok bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", nil, false
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil || len(m) != 1 {
		return "", nil, false
	}
	for k, v := range m {
		if k == "Ref" || strings.HasPrefix(k, "Fn::") {
			return k, v, true
		}
	}
	return "", nil, false
}

// refTo returns the logical name s refers to with Ref, or "".
func refTo(s string) string {
	if name, arg, ok := intrinsic(s); ok && name == "Ref" {
		r, _ := arg.(string)
		return r
	}
	return ""
}

// subText returns the format string of a Fn::Sub, or "".
func subText(s string) string {
	if name, arg, ok := intrinsic(s); ok && name == "Fn::Sub" {
		r, _ := arg.(string)
		return r
	}
	return ""
}

func TestTemplateIsValidAgainstGoformationSAMSchema(t *testing.T) {
	tp := loadTemplate(t)
	start := time.Now()
	res, err := gojsonschema.Validate(gojsonschema.NewStringLoader(schema.SamSchema), gojsonschema.NewBytesLoader(tp.json))
	if err != nil {
		t.Fatalf("schema validation could not run: %v", err)
	}
	for _, e := range res.Errors() {
		t.Errorf("template.yaml: %s", e)
	}
	t.Logf("validated against the SAM schema in %s", time.Since(start).Round(time.Millisecond))
	if tp.Transform == nil || tp.Transform.String == nil || *tp.Transform.String != "AWS::Serverless-2016-10-31" {
		t.Error("template.yaml must declare Transform: AWS::Serverless-2016-10-31")
	}
}

// TestSchemaRejectsAMisspelledProperty keeps the schema check honest: the
// validation above must be able to fail.
func TestSchemaRejectsAMisspelledProperty(t *testing.T) {
	tp := loadTemplate(t)
	var doc map[string]any
	if err := json.Unmarshal(tp.json, &doc); err != nil {
		t.Fatal(err)
	}
	fn := doc["Resources"].(map[string]any)["LoginFunction"].(map[string]any)
	fn["Properties"].(map[string]any)["Handlr"] = "bootstrap"
	b, _ := json.Marshal(doc)
	res, err := gojsonschema.Validate(gojsonschema.NewStringLoader(schema.SamSchema), gojsonschema.NewBytesLoader(b))
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid() {
		t.Error("a function with the unknown property Handlr passed the SAM schema")
	}
}

// samFunctions maps each function folder to its resource, failing for a
// resource whose CodeUri is not a functions/ folder.
func samFunctions(t *testing.T, tp samTemplate) map[string]*serverless.Function {
	t.Helper()
	out := map[string]*serverless.Function{}
	for name, fn := range tp.GetAllServerlessFunctionResources() {
		if fn.CodeUri == nil || fn.CodeUri.String == nil {
			t.Errorf("%s: CodeUri must be the function's folder", name)
			continue
		}
		folder, ok := strings.CutPrefix(strings.TrimSuffix(*fn.CodeUri.String, "/"), "functions/")
		if !ok || strings.Contains(folder, "/") {
			t.Errorf("%s: CodeUri %q is not functions/<name>/", name, *fn.CodeUri.String)
			continue
		}
		if prev, dup := out[folder]; dup {
			t.Errorf("functions/%s is deployed twice (%s and %s)", folder, name, *prev.FunctionName)
		}
		out[folder] = fn
	}
	return out
}

func TestEveryFunctionFolderHasOneSAMFunctionWithItsRouteOrSchedule(t *testing.T) {
	tp := loadTemplate(t)
	fns := samFunctions(t, tp)
	want := map[string]bool{}
	for _, f := range functions(t) {
		want[f.Folder] = true
		fn, ok := fns[f.Folder]
		if !ok {
			t.Errorf("functions/%s has no AWS::Serverless::Function in template.yaml", f.Folder)
			continue
		}
		if f.Path != "" {
			// One HttpApi event per route the function serves.
			var got []string
			for name, ev := range fn.Events {
				if ev.Type != "HttpApi" || ev.Properties == nil || ev.Properties.HttpApiEvent == nil {
					t.Errorf("%s: event %s is %s, want an HttpApi route", f.Name, name, ev.Type)
					continue
				}
				h := ev.Properties.HttpApiEvent
				got = append(got, deref(h.Method)+" "+deref(h.Path))
				if h.ApiId == nil || refTo(*h.ApiId) != "HttpApi" {
					t.Errorf("%s: route must be on the one HttpApi (ApiId: !Ref HttpApi)", f.Name)
				}
				if h.PayloadFormatVersion == nil || *h.PayloadFormatVersion != "2.0" {
					t.Errorf("%s: PayloadFormatVersion must be 2.0, the event shape shared/runtime/awslambda reads", f.Name)
				}
			}
			slices.Sort(got)
			if want := gatewayRoutes(t, f); !slices.Equal(got, want) {
				t.Errorf("%s: routes %v, want %v (the local stack's)", f.Name, got, want)
			}
			continue
		}
		if len(fn.Events) != 1 {
			t.Errorf("%s: has %d events, want exactly one (its schedule)", f.Name, len(fn.Events))
			continue
		}
		for _, ev := range fn.Events {
			rate, _ := scheduleFor(t, f.Schedule)
			if ev.Type != "Schedule" || ev.Properties == nil || ev.Properties.ScheduleEvent == nil {
				t.Errorf("%s: event is %s, want a Schedule", f.Name, ev.Type)
				continue
			}
			if got := ev.Properties.ScheduleEvent.Schedule; got != rate {
				t.Errorf("%s: schedule %q, want %q (setup.Functions says every %s)", f.Name, got, rate, f.Schedule)
			}
		}
	}
	for folder := range fns {
		if !want[folder] {
			t.Errorf("template.yaml deploys functions/%s, which has no main.go", folder)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<unset>"
	}
	return *s
}

func TestSAMFunctionsRunTheBootstrapBinaryOnAL2023Arm64(t *testing.T) {
	tp := loadTemplate(t)
	for folder, fn := range samFunctions(t, tp) {
		if deref(fn.Runtime) != "provided.al2023" || deref(fn.Handler) != "bootstrap" || !slices.Equal(fn.Architectures, []string{"arm64"}) {
			t.Errorf("%s: runtime %s handler %s arch %v; want provided.al2023, bootstrap, [arm64]", folder, deref(fn.Runtime), deref(fn.Handler), fn.Architectures)
		}
		// sam build compiles CodeUri with its Go builder when BuildMethod is
		// go1.x; without it provided.* runtimes need a Makefile.
		if fn.AWSCloudFormationMetadata["BuildMethod"] != "go1.x" {
			t.Errorf("%s: Metadata.BuildMethod = %v, want go1.x", folder, fn.AWSCloudFormationMetadata["BuildMethod"])
		}
		if fn.Timeout == nil || *fn.Timeout <= 8 {
			t.Errorf("%s: Timeout must exceed WECHATPAY_TIMEOUT's default 8s", folder)
		}
	}
}

// TestSAMFunctionsGetNoSecretOnlyTheARNOfTheirOwn proves no secret is in
// any function's configuration: no variable shared/config marks secret, no
// dynamic reference that CloudFormation would resolve into it; each function
// names a Secrets Manager secret of its own, which it fetches at run time.
func TestSAMFunctionsGetNoSecretOnlyTheARNOfTheirOwn(t *testing.T) {
	tp := loadTemplate(t)
	_, secret := configVars(t)
	fns := samFunctions(t, tp)
	secrets := tp.GetAllSecretsManagerSecretResources()
	owner := map[string]string{}
	for _, f := range functions(t) {
		fn, ok := fns[f.Folder]
		if !ok {
			continue // reported by the folder test
		}
		if fn.Environment == nil {
			t.Errorf("%s: no environment", f.Name)
			continue
		}
		vars := fn.Environment.Variables
		checkEnvironment(t, "template.yaml", f, slices.Sorted(maps.Keys(vars)))
		for name := range vars {
			if secret[name] || name == "WECHATPAY_MCH_CERT_SERIAL" {
				t.Errorf("%s: %s is in the function's configuration; it belongs in its secret", f.Name, name)
			}
		}
		if vars["PAYFN_SECRET_SOURCE"] != "aws-secretsmanager" {
			t.Errorf("%s: PAYFN_SECRET_SOURCE = %q, want aws-secretsmanager", f.Name, vars["PAYFN_SECRET_SOURCE"])
		}
		ref := refTo(vars["PAYFN_SECRET_ID"])
		sec, ok := secrets[ref]
		if !ok {
			t.Errorf("%s: PAYFN_SECRET_ID must be !Ref of an AWS::SecretsManager::Secret in the template, got %q", f.Name, vars["PAYFN_SECRET_ID"])
			continue
		}
		if prev, taken := owner[ref]; taken {
			t.Errorf("%s and %s share the secret %s; each function gets its own", prev, f.Name, ref)
		}
		owner[ref] = string(f.Name)
		if sec.SecretString != nil || sec.GenerateSecretString != nil {
			t.Errorf("%s: the secret's value is set in the template", ref)
		}
		// The description tells the operator what to put in it, and what
		// service mode adds.
		if d := deref(sec.Description); !strings.Contains(d, strings.Join(setup.SecretKeys(f.Name), ", ")) {
			t.Errorf("%s: the description must list the keys %v, got %q", ref, setup.SecretKeys(f.Name), d)
		}
		for _, k := range optionalSecretKeys(t, f.Name) {
			if d := deref(sec.Description); !strings.Contains(d, "also "+k) {
				t.Errorf("%s: the description must say the secret may also hold %s, got %q", ref, k, d)
			}
		}
	}
	for name, p := range tp.Parameters {
		if p.Default != nil && secretLooking(fmt.Sprint(p.Default)) {
			t.Errorf("parameter %s has a default that looks like key material", name)
		}
	}
}

// TestDeploymentFilesCarryNoSecretAndNoDynamicSecretReference scans both
// deployment files as text: a dynamic reference would put the value into
// the function's configuration at deploy time, and no secret setting may
// be given a value at all.
func TestDeploymentFilesCarryNoSecretAndNoDynamicSecretReference(t *testing.T) {
	_, secret := configVars(t)
	for _, file := range []string{"template.yaml", "serverless.yml"} {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, bad := range []string{"{{resolve:", "resolve:ssm", "secretsmanager:SecretString"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s contains %q: that resolves a secret into the configuration", file, bad)
			}
		}
		if secretLooking(text) {
			t.Errorf("%s contains something that looks like key material", file)
		}
		for name := range secret {
			if regexp.MustCompile(`(?m)^\s+` + name + `:`).MatchString(text) {
				t.Errorf("%s gives the secret setting %s a value", file, name)
			}
		}
	}
}

func secretLooking(s string) bool {
	return strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, "mongodb://") || strings.Contains(s, "mongodb+srv://")
}

// TestEachFunctionRoleMayOnlyWriteItsOwnLogGroupAndReadItsOwnSecret proves
// least privilege: each role allows logs:CreateLogStream and
// logs:PutLogEvents on its own log group, secretsmanager:GetSecretValue on
// its function's own secret, and nothing else; no managed policy is
// attached.
func TestEachFunctionRoleMayOnlyWriteItsOwnLogGroupAndReadItsOwnSecret(t *testing.T) {
	tp := loadTemplate(t)
	roles := tp.GetAllIAMRoleResources()
	for folder, fn := range samFunctions(t, tp) {
		if fn.Policies != nil {
			t.Errorf("%s: SAM Policies would add a generated role; use Role", folder)
		}
		if fn.Role == nil {
			t.Errorf("%s: no Role", folder)
			continue
		}
		name, arg, ok := intrinsic(*fn.Role)
		roleName, _ := arg.(string)
		if !ok || name != "Fn::GetAtt" {
			t.Errorf("%s: Role must be !GetAtt <Role>.Arn of a role in this template", folder)
			continue
		}
		if s, isList := arg.([]any); isList && len(s) == 2 {
			roleName, _ = s[0].(string)
		}
		roleName = strings.TrimSuffix(roleName, ".Arn")
		role, ok := roles[roleName]
		if !ok {
			t.Errorf("%s: role %s is not an AWS::IAM::Role in the template", folder, roleName)
			continue
		}
		if len(role.ManagedPolicyArns) > 0 {
			t.Errorf("%s: role has managed policies %v", folder, role.ManagedPolicyArns)
		}
		fnName := subText(deref(fn.FunctionName))
		if fnName == "" {
			t.Errorf("%s: FunctionName must be !Sub \"${AWS::StackName}-<name>\" so the role can name its log group", folder)
			continue
		}
		wantRes := "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/" + fnName + ":*"
		var ownSecret string
		if fn.Environment != nil {
			ownSecret = refTo(fn.Environment.Variables["PAYFN_SECRET_ID"])
		}
		var logs, reads int
		for _, p := range role.Policies {
			doc, _ := p.PolicyDocument.(map[string]any)
			sts, _ := doc["Statement"].([]any)
			for _, s := range sts {
				st, _ := s.(map[string]any)
				actions := strings.Fields(strings.Trim(fmt.Sprint(st["Action"]), "[]"))
				slices.Sort(actions)
				res, _ := st["Resource"].(string)
				switch {
				case st["Effect"] == "Allow" && slices.Equal(actions, []string{"logs:CreateLogStream", "logs:PutLogEvents"}) && subText(res) == wantRes:
					logs++
				case st["Effect"] == "Allow" && slices.Equal(actions, []string{"secretsmanager:GetSecretValue"}) && ownSecret != "" && refTo(res) == ownSecret:
					reads++
				default:
					t.Errorf("%s: role statement %v; want only Allow logs:CreateLogStream, logs:PutLogEvents on %s and secretsmanager:GetSecretValue on !Ref %s", folder, st, wantRes, ownSecret)
				}
			}
		}
		if logs != 1 || reads != 1 {
			t.Errorf("%s: role has %d log statements and %d secret statements, want 1 and 1", folder, logs, reads)
		}
		// The log group must exist before the first invocation: the role may
		// not create it.
		if !dependsOnLogGroup(tp, fn, fnName) {
			t.Errorf("%s: must DependsOn a log group named /aws/lambda/%s with retention", folder, fnName)
		}
	}
}

func dependsOnLogGroup(tp samTemplate, fn *serverless.Function, fnName string) bool {
	groups := tp.GetAllLogsLogGroupResources()
	for _, dep := range fn.AWSCloudFormationDependsOn {
		g, ok := groups[dep]
		if ok && g.LogGroupName != nil && subText(*g.LogGroupName) == "/aws/lambda/"+fnName && g.RetentionInDays != nil {
			return true
		}
	}
	return false
}

func TestVerifyPaymentHasAlarmsAndTheNotifyURLIsAnOutput(t *testing.T) {
	tp := loadTemplate(t)
	var crashes, logs bool
	for name, a := range tp.GetAllCloudWatchAlarmResources() {
		if len(a.AlarmActions) == 0 || refTo(a.AlarmActions[0]) != "AlarmTopic" {
			t.Errorf("alarm %s notifies nobody; want AlarmActions [!Ref AlarmTopic]", name)
		}
		if deref(a.Namespace) == "AWS/Lambda" && deref(a.MetricName) == "Errors" {
			for _, d := range a.Dimensions {
				if d.Name == "FunctionName" && refTo(d.Value) == "VerifyPaymentFunction" {
					crashes = true
				}
			}
		}
		if deref(a.Namespace) == "payfn" && strings.HasSuffix(subText(deref(a.MetricName)), "-verifyPayment-error-logs") {
			logs = true
		}
	}
	if !crashes {
		t.Error("no alarm on the Errors metric of VerifyPaymentFunction")
	}
	if !logs {
		t.Error("no alarm on verifyPayment's ERROR log lines")
	}
	var filtered bool
	for _, f := range tp.GetAllLogsMetricFilterResources() {
		if refTo(f.LogGroupName) == "VerifyPaymentLogGroup" && f.FilterPattern == `{ $.level = "ERROR" }` {
			filtered = true
		}
	}
	if !filtered {
		t.Error("no metric filter counting level ERROR lines of verifyPayment's log group")
	}
	// The notify URLs (WeChat Pay's and Alipay's) are outputs, on the
	// routes the callbacks are deployed at.
	base := "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
	notify := base + httpapi.PathVerifyPayment
	for name, want := range map[string]string{"NotifyUrl": notify, "RefundNotifyUrl": base + httpapi.PathVerifyRefund, "AlipayNotifyUrl": base + httpapi.PathAlipayNotify} {
		out, ok := tp.Outputs[name]
		v, _ := out.Value.(string)
		if !ok || subText(v) != want {
			t.Errorf("Outputs.%s = %v, want !Sub %q", name, out.Value, want)
		}
	}
	// refund and reconcile send NotifyUrl + "/refund" as the refund
	// notify_url (shared/wxpay, WECHATPAY_REFUND_NOTIFY_URL unset), so that
	// must be verifyRefund's route.
	if httpapi.PathVerifyPayment+"/refund" != httpapi.PathVerifyRefund {
		t.Errorf("verifyRefund's route %s is not verifyPayment's + /refund; template.yaml must then set WECHATPAY_REFUND_NOTIFY_URL", httpapi.PathVerifyRefund)
	}
}

// TestREADMEConfigurationTableListsEveryVariable keeps the README's table,
// which the Deploy section and docs/deploy.md refer to, complete: every
// variable shared/config reads has a row.
func TestREADMEConfigurationTableListsEveryVariable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(b), "## Configuration\n")
	section, _, _ = strings.Cut(section, "\n## ")
	all, _ := configVars(t)
	for v := range all {
		if !strings.Contains(section, "| `"+v+"`") && !strings.Contains(section, ", `"+v+"` |") {
			t.Errorf("README's Configuration table has no row for %s", v)
		}
	}
}
