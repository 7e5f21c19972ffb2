package awslambda_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/payfn/payfn/shared/runtime/awslambda"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/runtime/internal/adaptertest"
)

// Issue 10, item 7: on Lambda the request id every answer names is the
// platform's, in the error body, in X-Request-Id and in the log lines.

// core is the real HTTP face, reached only on paths that need no use case
// (a refused media type, an unknown route), so no store or channel is built.
func core(logs *bytes.Buffer) *httpapi.API { return httpapi.New(nil, testLogger(logs)) }

func TestCoreErrorNamesTheGatewayRequestIDInBodyHeaderAndLogs(t *testing.T) {
	e, _ := loadEvent(t, "apigw-v2-post-json.json")
	delete(e.Headers, "content-type")
	var logs bytes.Buffer
	resp, err := awslambda.NewHandler(core(&logs).Login(), testLogger(&logs))(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	adaptertest.CheckRequestID(t, resp.StatusCode, http.StatusUnsupportedMediaType, resp.Headers, resp.Body, &logs, "UvWxYz1AbCdEFGh=")
}

func TestLambdaInvocationIDNamesTheAnswerWhenTheGatewayGivesNone(t *testing.T) {
	e, _ := loadEvent(t, "apigw-v2-post-json.json")
	e.RequestContext.RequestID = ""
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "8476a536-e9f4-11e8-9739-2dfe598c3fcd"})
	var logs bytes.Buffer
	resp, err := awslambda.NewHandler(core(&logs).NotFound(), testLogger(&logs))(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	adaptertest.CheckRequestID(t, resp.StatusCode, http.StatusNotFound, resp.Headers, resp.Body, &logs, "8476a536-e9f4-11e8-9739-2dfe598c3fcd")
}

func TestEventWithoutAnyRequestIDIsAnsweredWithAGeneratedOne(t *testing.T) {
	e, _ := loadEvent(t, "apigw-v2-post-json.json")
	e.RequestContext.RequestID = ""
	var got adaptertest.Seen
	resp, err := awslambda.NewHandler(adaptertest.RecordingHandler(t, &got), nil)(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	if id := resp.Headers[httpapi.HeaderRequestID]; id == "" || id != got.RequestID {
		t.Errorf("X-Request-Id = %q, handler saw %q: want one generated id", id, got.RequestID)
	}
}
