package tencentscf_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/tencentyun/scf-go-lib/functioncontext"

	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/runtime/internal/adaptertest"
	"github.com/payfn/payfn/shared/runtime/tencentscf"
)

// Issue 10, item 7: on SCF the request id every answer names is the
// platform's, in the error body, in X-Request-Id and in the log lines.

// core is the real HTTP face, reached only on paths that need no use case
// (a refused media type, an unknown route), so no store or channel is built.
func core(logs *bytes.Buffer) *httpapi.API { return httpapi.New(nil, testLogger(logs)) }

func TestCoreErrorNamesTheGatewayRequestIDInBodyHeaderAndLogs(t *testing.T) {
	e, _ := loadEvent(t, "apigw-post-json.json")
	delete(e.Headers, "content-type")
	var logs bytes.Buffer
	resp, err := tencentscf.NewHandler(core(&logs).Login(), testLogger(&logs))(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	adaptertest.CheckRequestID(t, resp.StatusCode, http.StatusUnsupportedMediaType, resp.Headers, resp.Body, &logs, "c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
}

func TestSCFInvocationIDNamesTheAnswerWhenTheGatewayGivesNone(t *testing.T) {
	e, _ := loadEvent(t, "apigw-post-json.json")
	e.Context.RequestID = ""
	ctx := functioncontext.NewContext(context.Background(), &functioncontext.FunctionContext{RequestID: "scf-invoke-42"})
	var logs bytes.Buffer
	resp, err := tencentscf.NewHandler(core(&logs).NotFound(), testLogger(&logs))(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	adaptertest.CheckRequestID(t, resp.StatusCode, http.StatusNotFound, resp.Headers, resp.Body, &logs, "scf-invoke-42")
}

func TestEventWithoutAnyRequestIDIsAnsweredWithAGeneratedOne(t *testing.T) {
	e, _ := loadEvent(t, "apigw-post-json.json")
	e.Context.RequestID = ""
	var got adaptertest.Seen
	resp, err := tencentscf.NewHandler(adaptertest.RecordingHandler(t, &got), nil)(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	if id := resp.Headers[httpapi.HeaderRequestID]; id == "" || id != got.RequestID {
		t.Errorf("X-Request-Id = %q, handler saw %q: want one generated id", id, got.RequestID)
	}
}
