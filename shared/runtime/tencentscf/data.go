package tencentscf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"

	"github.com/tencentyun/scf-go-lib/functioncontext"

	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/runtime/internal/serve"
)

// A CloudBase event function invoked by wx.cloud.callFunction({name, data})
// gets data itself as its event, not an API gateway event, and the caller
// in the invocation's environment (see identity.PlatformCallerFromEnvironment).
// A function that takes such data events serves each as a POST to its own
// route with data as the JSON body, and answers with a DataAnswer, which is
// what the mini-program receives as callFunction's result.

// Options adjust how Start serves a function.
type Options struct {
	// DataRoute, when set, makes the function take wx.cloud.callFunction's
	// data events too: each is served as POST DataRoute. Without it a data
	// event fails the invocation, as any event that is not from an API
	// gateway does.
	DataRoute string
}

// DataAnswer is a data event's answer, the result callFunction resolves
// with: the HTTP status the function answered, the request id, and the body
// it answered (a JSON value; an error is {code, message, request_id}, as
// over HTTP). A failed request is an answer with a 4xx or 5xx status, not a
// failed invocation.
type DataAnswer struct {
	Status    int             `json:"status"`
	RequestID string          `json:"request_id"`
	Body      json.RawMessage `json:"body"`
}

// dataUserInfo is the key older base libraries add to the data event
// ({appId, openId}); payfn never reads the caller from the event, and its
// decoders refuse unknown fields, so it is dropped before the body is read.
const dataUserInfo = "userInfo"

// NewEventHandler returns the SCF handler of an HTTP function: API gateway
// events are served as NewHandler serves them, and, when opts.DataRoute is
// set, wx.cloud.callFunction's data events as described on Options. An event
// is an API gateway event when it has httpMethod or requestContext; a timer
// event, or a data event without a DataRoute, fails the invocation.
func NewEventHandler(h http.Handler, logger *slog.Logger, opts Options) func(context.Context, []byte) ([]byte, error) {
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	gateway := jsonInvoke(NewHandler(h, logger))
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		var keys map[string]json.RawMessage
		object := json.Unmarshal(payload, &keys) == nil && keys != nil
		_, method := keys["httpMethod"]
		_, reqCtx := keys["requestContext"]
		switch {
		case method || reqCtx:
			return gateway(ctx, payload)
		case opts.DataRoute == "":
			return nil, errors.New("tencentscf: event is not an API gateway event (no httpMethod); the trigger must be an API Gateway trigger")
		case object && isTimer(keys):
			return nil, errors.New("tencentscf: a timer event reached an HTTP function; its trigger must be an API Gateway trigger or wx.cloud.callFunction")
		}
		return json.Marshal(serveData(ctx, h, opts.DataRoute, payload, logger))
	}
}

// isTimer reports whether an event is a timer trigger's.
func isTimer(keys map[string]json.RawMessage) bool {
	var typ string
	_, named := keys["TriggerName"]
	return named && json.Unmarshal(keys["Type"], &typ) == nil && typ == "Timer"
}

// serveData serves one data event at route.
func serveData(ctx context.Context, h http.Handler, route string, payload []byte, logger *slog.Logger) DataAnswer {
	id := ""
	fc, ok := functioncontext.FromContext(ctx)
	if ok {
		id = fc.RequestID
		// The caller of this invocation, and no other: the invocation's own
		// environment, never the process's.
		ctx = identity.WithPlatformCaller(ctx, identity.PlatformCallerFromEnvironment(fc.Environment))
	}
	if id == "" {
		id = httpapi.NewRequestID()
	}
	ctx = httpapi.WithRequestID(ctx, id)
	r, err := serve.NewRequest(ctx, serve.Request{
		Method:  http.MethodPost,
		RawPath: route,
		Proto:   "HTTP/1.1",
		Header:  http.Header{"Content-Type": {"application/json"}},
		Body:    dataBody(payload),
	})
	var res serve.Response
	if err != nil {
		logger.ErrorContext(ctx, "cannot serve data event", "request_id", id, "err", err)
		res = serve.Error(id, http.StatusInternalServerError, "INTERNAL", "internal error")
	} else {
		res = serve.Handle(h, r, logger)
	}
	return DataAnswer{Status: res.Status, RequestID: id, Body: answerBody(res.Body)}
}

// dataBody is the data event as the request body: byte for byte, but for a
// top-level userInfo key, which is cut out (the other members keep their
// bytes). Anything that is not a JSON object is passed on as it is, for the
// function to refuse.
func dataBody(payload []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return payload
	}
	var b bytes.Buffer
	b.WriteByte('{')
	found := false
	for dec.More() {
		tok, err := dec.Token()
		key, isKey := tok.(string)
		var v json.RawMessage
		if err != nil || !isKey || dec.Decode(&v) != nil {
			return payload
		}
		if key == dataUserInfo {
			found = true
			continue
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	// The object must end the payload, as the decoders downstream demand.
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') || !atEOF(dec) {
		return payload
	}
	if !found {
		return payload
	}
	b.WriteByte('}')
	return b.Bytes()
}

func atEOF(dec *json.Decoder) bool {
	_, err := dec.Token()
	return err == io.EOF
}

// answerBody is a response body as a JSON value: itself when it is JSON,
// else a string of it, null when empty.
func answerBody(body []byte) json.RawMessage {
	switch {
	case len(bytes.TrimSpace(body)) == 0:
		return json.RawMessage("null")
	case json.Valid(body):
		return json.RawMessage(body)
	}
	s, _ := json.Marshal(string(body))
	return s
}
