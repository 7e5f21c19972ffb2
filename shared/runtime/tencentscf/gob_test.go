package tencentscf

import (
	"bufio"
	"bytes"
	"context"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"net"
	"net/rpc"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tencentyun/scf-go-lib/cloudfunction/messages"
	"github.com/tencentyun/scf-go-lib/functioncontext"
)

// runtimeTimestamp and runtimeInvokeRequest stand for a runtime whose
// messages have more fields than scf-go-lib's, in another order and with
// other integer sizes and pointers: gob matches fields by name.
type runtimeTimestamp struct {
	Zone    string
	Nanos   int32
	Leap    *bool
	Seconds int64
}

type runtimeNode struct {
	Name string
	Kids []*runtimeNode
}

type runtimeInvokeRequest struct {
	Labels          map[string]string
	FunctionTrace   *string
	Deadline        runtimeTimestamp
	Weights         []float64
	Grid            [2][3]int
	Started         time.Time // a GobEncoder, sent as bytes
	Phase           complex128
	Verbose         bool
	Payload         []byte
	Tree            *runtimeNode
	Frames          []*messages.InvokeResponse_Error_StackFrame
	ByLine          map[int32]runtimeTimestamp
	Extra           any // never set: a nil interface is left out
	RequestId       string
	MemoryLimitInMb int64
	TimeLimitInMs   int8
	Environment     string
	Namespace       string
	Retries         uint16
	ClientContext   []byte
	FunctionName    string
}

func ptr[T any](v T) *T { return &v }

func richRequest() *runtimeInvokeRequest {
	return &runtimeInvokeRequest{
		Labels:          map[string]string{"a": "b", "c": ""},
		FunctionTrace:   ptr("trace-1"),
		Deadline:        runtimeTimestamp{Zone: "UTC", Nanos: 7, Leap: ptr(true), Seconds: 1_900_000_000},
		Weights:         []float64{1.5, -2, math.Inf(1)},
		Grid:            [2][3]int{{1, 2, 3}, {-4, 5, 6}},
		Started:         time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Phase:           complex(1, -1),
		Verbose:         true,
		Payload:         []byte(`{"x":1}`),
		Tree:            &runtimeNode{Name: "root", Kids: []*runtimeNode{{Name: "k", Kids: []*runtimeNode{{Name: "kk"}}}}},
		Frames:          []*messages.InvokeResponse_Error_StackFrame{{Path: "p", Line: 3}},
		ByLine:          map[int32]runtimeTimestamp{-1: {Zone: "z"}},
		RequestId:       "req-rich",
		MemoryLimitInMb: 512,
		TimeLimitInMs:   -3,
		Environment:     `{"PAYFN_TENCENTSCF_GOB_TEST":"V"}`,
		Namespace:       "ns",
		Retries:         9,
		ClientContext:   []byte(`{}`),
		FunctionName:    "fn",
	}
}

// wantRich is what richRequest decodes to.
var wantRich = messages.InvokeRequest{
	Payload:         []byte(`{"x":1}`),
	RequestId:       "req-rich",
	Deadline:        messages.InvokeRequest_Timestamp{Seconds: 1_900_000_000, Nanos: 7},
	ClientContext:   []byte(`{}`),
	Namespace:       "ns",
	FunctionName:    "fn",
	MemoryLimitInMb: 512,
	TimeLimitInMs:   -3,
	Environment:     `{"PAYFN_TENCENTSCF_GOB_TEST":"V"}`,
	FunctionTrace:   "trace-1",
}

var fullRequest = messages.InvokeRequest{
	Payload:               bytes.Repeat([]byte("p"), 300),
	RequestId:             "req-1",
	TraceId:               "trace",
	Deadline:              messages.InvokeRequest_Timestamp{Seconds: -5, Nanos: 999_999_999},
	InvokedFunctionUnique: "qcs::scf:ap-guangzhou:uin/1:function/fn",
	ClientContext:         []byte(`{"custom":{"a":1}}`),
	Namespace:             "default",
	FunctionName:          "fn",
	FunctionVersion:       "$LATEST",
	MemoryLimitInMb:       math.MaxInt32,
	TimeLimitInMs:         math.MinInt32,
	Environment:           `{"SCF_NAMESPACE":"default"}`,
	TencentcloudRegion:    "ap-guangzhou",
	TencentcloudAppID:     "1250000000",
	TencentcloudUin:       "100000000001",
	FunctionTrace:         "ft",
}

// decoded is one request as the codec read it.
type decoded struct {
	Header rpcRequest
	Invoke *messages.InvokeRequest
	Err    string // of reading the body
}

// readAll reads requests as serveRPC does until the stream ends or fails.
func readAll(r io.Reader) ([]decoded, error) {
	d := newGobDecoder(r)
	var out []decoded
	for {
		var got decoded
		if err := d.readRequestHeader(&got.Header); err != nil {
			return out, err
		}
		var err error
		switch got.Header.ServiceMethod {
		case "Function.Ping":
			err = d.readPing()
		case "Function.Invoke":
			got.Invoke = &messages.InvokeRequest{}
			err = d.readInvoke(got.Invoke)
		default:
			if err := d.discard(); err != nil {
				return out, err
			}
		}
		if err != nil {
			got.Err = err.Error()
		}
		out = append(out, got)
	}
}

// requestStream is what a net/rpc client sends for these calls.
func requestStream(t testing.TB) []byte {
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	send := func(method string, seq uint64, body any) {
		if err := enc.Encode(&rpc.Request{ServiceMethod: method, Seq: seq}); err != nil {
			t.Fatal(err)
		}
		if err := enc.Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	send("Function.Ping", 0, &messages.PingRequest{})
	send("Function.Invoke", 1, &fullRequest)
	send("Function.Nope", 2, map[string][]runtimeTimestamp{"a": {{Zone: "x"}}})
	send("Function.Invoke", 3, richRequest())
	send("Nope", 4, 42) // a singleton body
	send("Function.Invoke", math.MaxUint64, &messages.InvokeRequest{})
	send("Other.Method", 6, richRequest())
	send("Function.Invoke", 7, richRequest()) // its types are known by now
	send("Function.Ping", 8, &struct{ Extra []string }{[]string{"x"}})
	return buf.Bytes()
}

func TestGobDecodesWhatNetRPCClientsSend(t *testing.T) {
	got, err := readAll(bytes.NewReader(requestStream(t)))
	if err != io.EOF {
		t.Fatalf("stream ended with %v, want io.EOF", err)
	}
	want := []decoded{
		{Header: rpcRequest{"Function.Ping", 0}},
		{Header: rpcRequest{"Function.Invoke", 1}, Invoke: &fullRequest},
		{Header: rpcRequest{"Function.Nope", 2}},
		{Header: rpcRequest{"Function.Invoke", 3}, Invoke: &wantRich},
		{Header: rpcRequest{"Nope", 4}},
		{Header: rpcRequest{"Function.Invoke", math.MaxUint64}, Invoke: &messages.InvokeRequest{}},
		{Header: rpcRequest{"Other.Method", 6}},
		{Header: rpcRequest{"Function.Invoke", 7}, Invoke: &wantRich},
		{Header: rpcRequest{"Function.Ping", 8}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(decoded{}, rpcRequest{})); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
}

func TestGobBodyErrorsLeaveTheStreamReadable(t *testing.T) {
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	for i, body := range []any{
		&struct{ RequestId int }{5},               // a field of ours with another type
		&struct{ Deadline string }{"soon"},        // a struct field that is not a struct
		&struct{ MemoryLimitInMb int64 }{1 << 40}, // out of int32's range
		42, // not a struct
	} {
		enc.Encode(&rpc.Request{ServiceMethod: "Function.Invoke", Seq: uint64(i)})
		enc.Encode(body)
	}
	enc.Encode(&rpc.Request{ServiceMethod: "Function.Invoke", Seq: 9})
	enc.Encode(&messages.InvokeRequest{RequestId: "after"})
	got, err := readAll(&buf)
	if err != io.EOF || len(got) != 5 {
		t.Fatalf("read %d requests, then %v", len(got), err)
	}
	for _, g := range got[:4] {
		if g.Err == "" {
			t.Errorf("request %d: no error", g.Header.Seq)
		}
	}
	if got[4].Err != "" || got[4].Invoke.RequestId != "after" {
		t.Errorf("last request = %+v", got[4])
	}
}

// TestServeRPCReadsARicherRuntimeRequest calls serveRPC as a runtime whose
// InvokeRequest has more fields would.
func TestServeRPCReadsARicherRuntimeRequest(t *testing.T) {
	t.Cleanup(func() { os.Unsetenv("PAYFN_TENCENTSCF_GOB_TEST") }) // set from the request
	server, client := net.Pipe()
	go serveRPC(server, func(ctx context.Context, payload []byte) ([]byte, error) {
		fc, _ := functioncontext.FromContext(ctx)
		d, _ := ctx.Deadline()
		return []byte(string(payload) + fc.RequestID + fc.Namespace + fc.FunctionTrace + d.Format(time.RFC3339)), nil
	})
	c := rpc.NewClient(client)
	defer c.Close()
	for range 2 {
		var resp messages.InvokeResponse
		if err := c.Call("Function.Invoke", richRequest(), &resp); err != nil {
			t.Fatal(err)
		}
		if want := `{"x":1}req-richnstrace-12030-03-17T17:46:40Z`; string(resp.Payload) != want || resp.Error != nil {
			t.Errorf("response = %q, %+v; want %q", resp.Payload, resp.Error, want)
		}
	}
}

// responses are answers serveRPC may send.
var responses = []struct {
	h    rpcResponse
	body any
}{
	{rpcResponse{ServiceMethod: "Function.Ping"}, &messages.PingResponse{}},
	{rpcResponse{ServiceMethod: "Function.Invoke", Seq: 1}, &messages.InvokeResponse{Payload: []byte(`{"statusCode":200}`)}},
	{rpcResponse{ServiceMethod: "Function.Nope", Seq: 2, Error: "rpc: can't find method Nope"}, struct{}{}},
	{rpcResponse{ServiceMethod: "Function.Invoke", Seq: 3}, &messages.InvokeResponse{Error: &messages.InvokeResponse_Error{
		Message: "boom", Type: "string", ShouldExit: true,
		StackTrace: []*messages.InvokeResponse_Error_StackFrame{
			{Path: "a/b.go", Line: 12, Label: "F"}, {}, {Line: -1}, {Line: math.MaxInt32, Label: "G"}, {Line: math.MinInt32, Path: "p"},
		},
	}}},
	{rpcResponse{ServiceMethod: "Function.Invoke", Seq: 4}, &messages.InvokeResponse{}},
	{rpcResponse{ServiceMethod: "Function.Invoke", Seq: math.MaxUint64}, &messages.InvokeResponse{
		Payload: bytes.Repeat([]byte{0, 0xff}, 40_000), Error: &messages.InvokeResponse_Error{Type: "t"}}},
	{rpcResponse{Seq: 1 << 8, Error: "x"}, struct{}{}},
	{rpcResponse{ServiceMethod: "Function.Ping", Seq: 1 << 16}, &messages.PingResponse{}},
	{rpcResponse{ServiceMethod: "Function.Invoke", Seq: 128}, &messages.InvokeResponse{Error: &messages.InvokeResponse_Error{Message: strings.Repeat("m", 200)}}},
}

func encodeResponses(t testing.TB, order []int) []byte {
	var buf bytes.Buffer
	e := &gobEncoder{w: bufio.NewWriter(&buf)}
	for _, i := range order {
		if err := e.encode(responses[i].h, responses[i].body); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestGobResponsesDecodeWithEncodingGob(t *testing.T) {
	order := []int{0, 1, 2, 3, 4, 5, 6, 7, 8}
	dec := gob.NewDecoder(bytes.NewReader(encodeResponses(t, order)))
	for _, i := range order {
		var h rpc.Response
		if err := dec.Decode(&h); err != nil {
			t.Fatalf("response %d header: %v", i, err)
		}
		want := responses[i]
		if h.ServiceMethod != want.h.ServiceMethod || h.Seq != want.h.Seq || h.Error != want.h.Error {
			t.Errorf("response %d header = %+v, want %+v", i, h, want.h)
		}
		var err error
		diff := ""
		switch body := want.body.(type) {
		case struct{}:
			err = dec.Decode(&struct{}{})
		case *messages.PingResponse:
			var got messages.PingResponse
			err = dec.Decode(&got)
			diff = cmp.Diff(body, &got)
		case *messages.InvokeResponse:
			var got messages.InvokeResponse
			err = dec.Decode(&got)
			diff = cmp.Diff(body, &got)
		}
		if err != nil {
			t.Fatalf("response %d body: %v", i, err)
		}
		if diff != "" {
			t.Errorf("response %d body (-want +got):\n%s", i, diff)
		}
	}
	if err := dec.Decode(&rpc.Response{}); err != io.EOF {
		t.Errorf("after the responses: %v, want io.EOF", err)
	}
}

func TestGobEncoderRefusesANilStackFrame(t *testing.T) {
	e := &gobEncoder{w: bufio.NewWriter(io.Discard)}
	err := e.encode(rpcResponse{}, &messages.InvokeResponse{Error: &messages.InvokeResponse_Error{
		StackTrace: []*messages.InvokeResponse_Error_StackFrame{nil}}})
	if err == nil {
		t.Error("encoded a nil stack frame")
	}
}

const goldenChildEnv = "PAYFN_TENCENTSCF_GOB_GOLDEN_CHILD"

// TestGobResponseBytesAreEncodingGobs checks the encoder byte for byte
// against encoding/gob, type definitions included. encoding/gob numbers
// types process-wide in the order it first meets them, so the comparison
// runs in a fresh process that first meets them in the order gob.go's ids
// assume; each connection then defines them on first use, whatever the
// order of its answers.
func TestGobResponseBytesAreEncodingGobs(t *testing.T) {
	if os.Getenv(goldenChildEnv) != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGobResponseBytesAreEncodingGobs$", "-test.v")
		cmd.Env = append(os.Environ(), goldenChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("compared 4 connections")) {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	warm := gob.NewEncoder(io.Discard)
	for _, v := range []any{rpc.Response{}, struct{}{}, messages.PingResponse{}, messages.InvokeResponse{}} {
		if err := warm.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	connections := [][]int{
		{0, 1, 2, 3, 4, 5, 6, 7, 8},
		{3, 0, 6},
		{2, 5, 5, 7, 1},
		{8},
	}
	for _, order := range connections {
		var want bytes.Buffer
		enc := gob.NewEncoder(&want)
		for _, i := range order {
			h := responses[i].h
			if err := enc.Encode(&rpc.Response{ServiceMethod: h.ServiceMethod, Seq: h.Seq, Error: h.Error}); err != nil {
				t.Fatal(err)
			}
			if err := enc.Encode(responses[i].body); err != nil {
				t.Fatal(err)
			}
		}
		if got := encodeResponses(t, order); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("answers %v: encoded\n%s\nencoding/gob:\n%s", order, hex.Dump(got), hex.Dump(want.Bytes()))
		}
	}
	t.Logf("compared %d connections", len(connections))
}

// hostile streams: each must end in an error without a panic or a large
// allocation.
func hostileStreams(t testing.TB) map[string][]byte {
	u := func(x uint64) []byte { m := &gobMsg{}; m.appendUint(x); return m.b }
	msg := func(parts ...[]byte) []byte {
		body := bytes.Join(parts, nil)
		return append(u(uint64(len(body))), body...)
	}
	id := func(i int64) []byte { m := &gobMsg{}; m.appendInt(i); return m.b }
	// header is a net/rpc client's first message: Request's definition,
	// then a Request for Function.Invoke. headerDef is its first message.
	var hb bytes.Buffer
	gob.NewEncoder(&hb).Encode(&rpc.Request{ServiceMethod: "Function.Invoke", Seq: 1})
	header := hb.Bytes()
	headerDef := header[:1+header[0]]
	structDef := func(tid int64, fields ...gobField) []byte {
		b := [][]byte{id(-tid), {3, 1, 2}, id(tid), {0}}
		if len(fields) > 0 {
			b = append(b, []byte{1}, u(uint64(len(fields))))
			for _, f := range fields {
				b = append(b, []byte{1}, u(uint64(len(f.name))), []byte(f.name), []byte{1}, id(f.id), []byte{0})
			}
		}
		b = append(b, []byte{0, 0})
		return msg(b...)
	}
	sliceDef := func(tid, elem int64) []byte {
		return msg(id(-tid), []byte{2, 1, 2}, id(tid), []byte{0, 1}, id(elem), []byte{0, 0})
	}
	deep := append(bytes.Clone(header), structDef(100, gobField{"Nest", 100})...)
	deepValue := bytes.Repeat([]byte{1}, 5000)
	deep = append(deep, msg(id(100), deepValue)...)
	manyTypes := bytes.Clone(header)
	for i := int64(200); i < 600; i++ {
		manyTypes = append(manyTypes, structDef(i)...)
	}
	return map[string][]byte{
		"huge message count":      append(bytes.Clone(header), u(1<<62)...),
		"message larger than max": append(bytes.Clone(header), u(gobMaxMessage+1)...),
		"short message":           append(bytes.Clone(header), u(gobMaxMessage)...),
		"bad count":               {0x80},
		"huge slice count": append(append(append(bytes.Clone(header), structDef(101, gobField{"S", 100})...), sliceDef(100, gobString)...),
			msg(id(101), []byte{1}, u(1<<60))...),
		"huge string": append(append(bytes.Clone(header), structDef(100, gobField{"RequestId", gobString})...),
			msg(id(100), []byte{1}, u(1<<40), []byte("abc"))...),
		"huge map count": append(append(append(bytes.Clone(header),
			msg(id(-101), []byte{4, 1, 2}, id(101), []byte{0, 1}, id(gobInt), []byte{1}, id(gobInt), []byte{0, 0})...),
			structDef(100, gobField{"M", 101})...), msg(id(100), []byte{1}, u(1<<50))...),
		"deep nesting":         deep,
		"too many types":       manyTypes,
		"duplicate type":       append(append(bytes.Clone(header), structDef(100)...), structDef(100)...),
		"builtin redefined":    append(bytes.Clone(header), structDef(6)...),
		"unknown type":         append(bytes.Clone(header), msg(id(99), []byte{0})...),
		"interface value":      append(append(bytes.Clone(header), structDef(100, gobField{"X", gobInterface})...), msg(id(100), []byte{1, 3, 'a', 'b', 'c'})...),
		"field out of range":   append(append(bytes.Clone(header), structDef(100, gobField{"X", gobInt})...), msg(id(100), []byte{2, 0})...),
		"bad uint":             append(append(bytes.Clone(header), structDef(100, gobField{"X", gobInt})...), msg(id(100), []byte{1, 0xf0, 0})...),
		"header not a struct":  msg(id(gobInt), []byte{0, 4}),
		"truncated definition": headerDef[:20],
		"type without value":   headerDef,
	}
}

func TestGobDecoderRefusesHostileStreams(t *testing.T) {
	for name, stream := range hostileStreams(t) {
		t.Run(name, func(t *testing.T) {
			var got []decoded
			var err error
			allocated := allocatedBy(func() { got, err = readAll(bytes.NewReader(stream)) })
			failed := err != nil && err != io.EOF
			for _, g := range got {
				if g.Err != "" {
					failed, err = true, errors.New(g.Err)
				}
			}
			if !failed {
				t.Errorf("read %+v without an error", got)
			}
			t.Logf("%v; allocated %d bytes", err, allocated)
			if limit := allocLimit(stream); allocated > limit {
				t.Errorf("allocated %d bytes reading %d, limit %d", allocated, len(stream), limit)
			}
		})
	}
}

// allocLimit bounds what reading stream may allocate: a read chunk, and a
// small multiple of its size (a struct's fields, the type table).
func allocLimit(stream []byte) uint64 {
	return 2*gobReadChunk + 64<<10 + 128*uint64(len(stream))
}

func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzGobDecoder feeds arbitrary bytes to the decoder as serveRPC reads
// them: it must never panic, and never allocate much more than it read.
func FuzzGobDecoder(f *testing.F) {
	valid := requestStream(f)
	f.Add(valid)
	for _, n := range []int{1, 40, 80, 200, len(valid) / 2} {
		f.Add(valid[:n])
	}
	for _, s := range hostileStreams(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		var err error
		allocated := allocatedBy(func() { _, err = readAll(bytes.NewReader(stream)) })
		if err == nil {
			t.Fatal("readAll returned no error")
		}
		if limit := allocLimit(stream); allocated > limit {
			t.Errorf("allocated %d bytes reading %d, limit %d", allocated, len(stream), limit)
		}
	})
}
