package deploy

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/payfn/payfn/shared/setup"
)

// The structs below are the serverless.yml keys the serverless-tencent-scf
// plugin reads (provider/tencentProvider.js: getFunctionResource and the
// get*Event helpers). Decoding with KnownFields makes any other key an error:
// the plugin would silently ignore it, so a typo would deploy something else.
type slsFile struct {
	Service   string                 `yaml:"service"`
	Provider  slsProvider            `yaml:"provider"`
	Plugins   []string               `yaml:"plugins"`
	Package   slsPackage             `yaml:"package"`
	Functions map[string]slsFunction `yaml:"functions"`
}

type slsProvider struct {
	Name        string  `yaml:"name"`
	Runtime     string  `yaml:"runtime"`
	Region      string  `yaml:"region"`
	Stage       string  `yaml:"stage"`
	Credentials string  `yaml:"credentials"`
	MemorySize  int     `yaml:"memorySize"`
	Timeout     int     `yaml:"timeout"`
	Role        string  `yaml:"role"`
	CosBucket   string  `yaml:"cosBucket"`
	Environment *slsEnv `yaml:"environment"`
}

type slsPackage struct {
	Artifact string   `yaml:"artifact"`
	Include  []string `yaml:"include"`
	Exclude  []string `yaml:"exclude"`
}

type slsEnv struct {
	Variables map[string]string `yaml:"variables"`
}

type slsFunction struct {
	Handler     string     `yaml:"handler"`
	Description string     `yaml:"description"`
	Runtime     string     `yaml:"runtime"`
	MemorySize  int        `yaml:"memorySize"`
	Timeout     int        `yaml:"timeout"`
	Role        string     `yaml:"role"`
	Environment *slsEnv    `yaml:"environment"`
	Events      []slsEvent `yaml:"events"`
}

type slsEvent struct {
	Apigw *struct {
		Name       string `yaml:"name"`
		Parameters struct {
			StageName          string `yaml:"stageName"`
			ServiceID          string `yaml:"serviceId"`
			HTTPMethod         string `yaml:"httpMethod"`
			IntegratedResponse bool   `yaml:"integratedResponse"`
			Enable             bool   `yaml:"enable"`
		} `yaml:"parameters"`
	} `yaml:"apigw"`
	Timer *struct {
		Name       string `yaml:"name"`
		Parameters struct {
			CronExpression string `yaml:"cronExpression"`
			Enable         bool   `yaml:"enable"`
		} `yaml:"parameters"`
	} `yaml:"timer"`
}

func parseServerless(data []byte) (slsFile, error) {
	var f slsFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&f)
	return f, err
}

func loadServerless(t *testing.T) slsFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "serverless.yml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseServerless(data)
	if err != nil {
		t.Fatalf("serverless.yml: %v", err)
	}
	return f
}

func TestServerlessYAMLStrictParseRejectsUnknownKeys(t *testing.T) {
	loadServerless(t) // the real file parses strictly
	// And the strict parse can fail: a misspelled key the plugin would ignore.
	bad := []byte("service: payfn\nprovider:\n  name: tencent\n  runtime: Go1\nfunctions:\n  login:\n    handler: login\n    enviroment:\n      variables: {}\n")
	if _, err := parseServerless(bad); err == nil || !strings.Contains(err.Error(), "enviroment") {
		t.Errorf("misspelled key: err = %v, want an error naming it", err)
	}
}

func TestServerlessYAMLTargetsSCFGo1WithTheBuiltPackage(t *testing.T) {
	f := loadServerless(t)
	if f.Provider.Name != "tencent" || f.Provider.Runtime != "Go1" || !slices.Equal(f.Plugins, []string{"serverless-tencent-scf"}) {
		t.Errorf("provider %s runtime %s plugins %v; want tencent, Go1, [serverless-tencent-scf]", f.Provider.Name, f.Provider.Runtime, f.Plugins)
	}
	// The plugin copies function variables into the provider's map in place,
	// so a provider-level environment would leak one function's secrets into
	// the next.
	if f.Provider.Environment != nil {
		t.Error("provider.environment must stay empty; set variables per function")
	}
	if f.Provider.Timeout <= 8 {
		t.Errorf("provider.timeout %d must exceed WECHATPAY_TIMEOUT's default 8s", f.Provider.Timeout)
	}
	if f.Package.Artifact != "dist/scf/amd64/payfn.zip" {
		t.Errorf("package.artifact = %q, want the bundle scripts/build writes, dist/scf/amd64/payfn.zip", f.Package.Artifact)
	}
}

// scfMethod is the API gateway trigger's method for an HTTP function: the
// method of its gateway routes (POST, or ANY for a function serving a
// subtree). SCF's gateway matches an API's path as a prefix, so one trigger
// whose API sits at the subtree's base serves all of it.
func scfMethod(t *testing.T, fn function) string {
	t.Helper()
	var methods []string
	for _, r := range gatewayRoutes(t, fn) {
		m, _, _ := strings.Cut(r, " ")
		if !slices.Contains(methods, m) {
			methods = append(methods, m)
		}
	}
	if len(methods) != 1 {
		t.Fatalf("%s: routes with methods %v; one SCF trigger cannot serve them", fn.Name, methods)
	}
	return methods[0]
}

// envRef matches a value taken from the deploying environment, with an
// optional quoted default: ${env:NAME} or ${env:NAME, 'x'}.
var envRef = regexp.MustCompile(`^\$\{env:([A-Z0-9_]+)(?:, '([^']*)')?\}$`)

func TestEverySCFFunctionMatchesItsFolderTriggerAndVariables(t *testing.T) {
	f := loadServerless(t)
	_, secret := configVars(t)
	want := map[string]bool{}
	for _, fn := range functions(t) {
		want[fn.Folder] = true
		sf, ok := f.Functions[fn.Folder]
		if !ok {
			t.Errorf("functions/%s has no function in serverless.yml (key = folder name)", fn.Folder)
			continue
		}
		if sf.Handler != fn.Folder {
			t.Errorf("%s: handler %q, want %q (the executable's name in the package)", fn.Folder, sf.Handler, fn.Folder)
		}
		if sf.Runtime != "" && sf.Runtime != "Go1" {
			t.Errorf("%s: runtime %q, want Go1", fn.Folder, sf.Runtime)
		}
		if len(sf.Events) != 1 {
			t.Errorf("%s: %d events, want one trigger", fn.Folder, len(sf.Events))
		} else if ev := sf.Events[0]; fn.Path != "" {
			a := ev.Apigw
			if a == nil || ev.Timer != nil {
				t.Errorf("%s: want one apigw trigger", fn.Folder)
			} else if p, method := a.Parameters, scfMethod(t, fn); p.HTTPMethod != method || !p.IntegratedResponse || !p.Enable || p.StageName != "release" {
				// shared/runtime/tencentscf answers with an integration
				// response; without integratedResponse the gateway would send
				// that JSON envelope to the client as the body.
				t.Errorf("%s: apigw %+v; want %s, integratedResponse, enabled, stage release", fn.Folder, p, method)
			}
		} else {
			_, cron := scheduleFor(t, fn.Schedule)
			if ev.Timer == nil || ev.Apigw != nil {
				t.Errorf("%s: want one timer trigger", fn.Folder)
			} else if ev.Timer.Parameters.CronExpression != cron || !ev.Timer.Parameters.Enable {
				t.Errorf("%s: timer %+v, want %q enabled (setup.Functions says every %s)", fn.Folder, ev.Timer.Parameters, cron, fn.Schedule)
			}
		}
		if sf.Environment == nil {
			t.Errorf("%s: no environment", fn.Folder)
			continue
		}
		vars := sf.Environment.Variables
		checkEnvironment(t, "serverless.yml", fn, slices.Sorted(maps.Keys(vars)))
		// The secret's name and source are fixed, not settings; the secret
		// itself is read at run time with the function's own role.
		if v := vars["PAYFN_SECRET_SOURCE"]; v != "tencent-ssm" {
			t.Errorf("%s: PAYFN_SECRET_SOURCE = %q, want tencent-ssm", fn.Folder, v)
		}
		if v := vars["PAYFN_SECRET_ID"]; v != "payfn-"+fn.Folder {
			t.Errorf("%s: PAYFN_SECRET_ID = %q, want payfn-%s (an SSM secret of its own)", fn.Folder, v, fn.Folder)
		}
		if sf.Role != "payfn-"+fn.Folder {
			t.Errorf("%s: role %q, want payfn-%s (an execution role that may read only its secret)", fn.Folder, sf.Role, fn.Folder)
		}
		for name, v := range vars {
			if secret[name] || name == "WECHATPAY_MCH_CERT_SERIAL" {
				t.Errorf("%s: %s is in the function's configuration; it belongs in its secret", fn.Folder, name)
			}
			if name == "PAYFN_SECRET_SOURCE" || name == "PAYFN_SECRET_ID" {
				continue
			}
			m := envRef.FindStringSubmatch(v)
			if m == nil || m[1] != name {
				t.Errorf("%s: %s = %q, want ${env:%s} (settings come from the deploying environment)", fn.Folder, name, v, name)
				continue
			}
			if secret[name] && m[2] != "" {
				t.Errorf("%s: secret %s has a default in the file", fn.Folder, name)
			}
		}
		// On SCF each trigger gets its own path, so the refund notify_url
		// cannot be derived from the payment one: the functions that send
		// refunds to WeChat Pay must be given it, with no default.
		if fn.Name == setup.Refund || fn.Name == setup.Reconcile || fn.Name == setup.ServerAPI {
			if v := vars["WECHATPAY_REFUND_NOTIFY_URL"]; v != "${env:WECHATPAY_REFUND_NOTIFY_URL}" {
				t.Errorf("%s: WECHATPAY_REFUND_NOTIFY_URL = %q, want ${env:WECHATPAY_REFUND_NOTIFY_URL}", fn.Folder, v)
			}
		}
	}
	for name := range f.Functions {
		if !want[name] {
			t.Errorf("serverless.yml deploys %s, which is no functions/ folder", name)
		}
	}
}
