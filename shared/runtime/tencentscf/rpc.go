package tencentscf

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tencentyun/scf-go-lib/cloudfunction/messages"
	"github.com/tencentyun/scf-go-lib/functioncontext"
)

// This file is scf-go-lib's cloudfunction.Start (Apache-2.0) without
// net/rpc. The SCF Go runtime calls "Function.Ping" and "Function.Invoke"
// over net/rpc's gob protocol on _LAMBDA_SERVER_PORT; the library serves
// them with rpc.Register, whose reflection over method sets
// (reflect.Type.Method) makes the linker keep every exported method of every
// reachable type, and whose package init parses an html/template. Serving
// the two methods directly over the same wire protocol keeps about 2 MB out
// of every function binary and that work out of its cold start, while SCF,
// and any net/rpc client, sees the same bytes as before. The gob encoding
// itself is gob.go's small codec, not encoding/gob, which would cost about
// 300 KB more.

// rpcRequest and rpcResponse are net/rpc's Request and Response headers,
// read and written by the gob codec in gob.go.
type rpcRequest struct {
	ServiceMethod string
	Seq           uint64
}

type rpcResponse struct {
	ServiceMethod string
	Seq           uint64
	Error         string
}

// startRPC listens as cloudfunction.StartHandler does and serves invoke
// until the process ends. Like the library it exits through log.Fatal when
// it cannot listen or accept.
func startRPC(invoke invokeFunc) {
	lis, err := net.Listen("tcp", "localhost:"+os.Getenv("_LAMBDA_SERVER_PORT"))
	if err != nil {
		log.Fatal(err)
	}
	for {
		conn, err := lis.Accept()
		if err != nil {
			log.Print("rpc.Serve: accept:", err.Error())
			log.Fatal("accept should not have returned")
		}
		go serveRPC(conn, invoke)
	}
}

// invokeFunc turns an event payload into a response payload.
type invokeFunc func(ctx context.Context, payload []byte) ([]byte, error)

// jsonInvoke is the library's reflective handler wrapper for the one shape
// payfn uses: decode the payload into In, call fn, encode what it returns.
func jsonInvoke[In, Out any](fn func(context.Context, In) (Out, error)) invokeFunc {
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		var in In
		if err := json.Unmarshal(payload, &in); err != nil {
			return nil, err
		}
		out, err := fn(ctx, in)
		if err != nil {
			return nil, err
		}
		return json.Marshal(out)
	}
}

// serveRPC is net/rpc's ServeCodec with its gob codec: requests are read in
// order, served concurrently, and answered under one write lock.
func serveRPC(conn io.ReadWriteCloser, invoke invokeFunc) {
	dec := newGobDecoder(bufio.NewReader(conn))
	enc := &gobEncoder{w: bufio.NewWriter(conn)}
	var sending sync.Mutex
	var wg sync.WaitGroup
	send := func(h rpcResponse, body any) {
		sending.Lock()
		defer sending.Unlock()
		if err := enc.encode(h, body); err != nil {
			log.Println("rpc: writing response:", err)
			conn.Close()
		}
	}
loop:
	for {
		var h rpcRequest
		if err := dec.readRequestHeader(&h); err != nil {
			if err != io.EOF {
				log.Println("rpc:", err)
			}
			break loop
		}
		resp := rpcResponse{ServiceMethod: h.ServiceMethod, Seq: h.Seq}
		switch h.ServiceMethod {
		case "Function.Ping":
			if err := dec.readPing(); err != nil {
				resp.Error = err.Error()
				send(resp, struct{}{})
				continue
			}
			send(resp, &messages.PingResponse{})
		case "Function.Invoke":
			var req messages.InvokeRequest
			if err := dec.readInvoke(&req); err != nil {
				resp.Error = err.Error()
				send(resp, struct{}{})
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				send(resp, invokeRPC(&req, invoke))
			}()
		default:
			// Discard the body, as net/rpc does, and answer with its error.
			if err := dec.discard(); err != nil {
				break loop
			}
			service, method, ok := strings.Cut(h.ServiceMethod, ".")
			switch {
			case !ok:
				resp.Error = "rpc: service/method request ill-formed: " + h.ServiceMethod
			case service != "Function":
				resp.Error = "rpc: can't find service " + h.ServiceMethod
			default:
				resp.Error = "rpc: can't find method " + method
			}
			send(resp, struct{}{})
		}
	}
	wg.Wait()
	conn.Close()
}

// invokeRPC is the library's Function.Invoke: a deadline context carrying the
// function context, the environment applied (but for the caller's keys), and
// a panic reported as an error that asks the runtime to restart the process.
func invokeRPC(req *messages.InvokeRequest, invoke invokeFunc) (response *messages.InvokeResponse) {
	response = &messages.InvokeResponse{}
	defer func() {
		if p := recover(); p != nil {
			response.Payload = nil
			response.Error = &messages.InvokeResponse_Error{
				Message:    fmt.Sprintf("%v", p),
				Type:       typeName(p),
				StackTrace: panicStack(),
				ShouldExit: true,
			}
		}
	}()

	deadline := time.Unix(req.Deadline.Seconds, req.Deadline.Nanos).UTC()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	lc := &functioncontext.FunctionContext{
		RequestID:             req.RequestId,
		InvokedFunctionUnique: req.InvokedFunctionUnique,
		Namespace:             req.Namespace,
		FunctionName:          req.FunctionName,
		FunctionVersion:       req.FunctionVersion,
		MemoryLimitInMb:       req.MemoryLimitInMb,
		TimeLimitInMs:         req.TimeLimitInMs,
		TencentcloudRegion:    req.TencentcloudRegion,
		TencentcloudAppID:     req.TencentcloudAppID,
		TencentcloudUin:       req.TencentcloudUin,
		FunctionTrace:         req.FunctionTrace,
	}
	if len(req.ClientContext) > 0 {
		if err := json.Unmarshal(req.ClientContext, &lc.ClientContext); err != nil {
			response.Error = errorResponse(err)
			return response
		}
	}
	if len(req.Environment) > 0 {
		if err := json.Unmarshal([]byte(req.Environment), &lc.Environment); err != nil {
			response.Error = errorResponse(err)
			return response
		}
		for k, v := range lc.Environment {
			// The library copies the whole environment into the process
			// and never clears it. The caller's keys (WX_OPENID, TCB_SOURCE,
			// ...) describe this invocation only: copied, a later call
			// without a caller would find this one's in os.Getenv. They are
			// read from the function context alone (adapters pass them on
			// in the request context), so they stay out of the process.
			if invocationKey(k) {
				continue
			}
			os.Setenv(k, v)
		}
	}
	payload, err := invoke(functioncontext.NewContext(ctx, lc), req.Payload)
	if err != nil {
		response.Error = errorResponse(err)
		return response
	}
	response.Payload = payload
	return response
}

// invocationKey reports whether an environment key describes one
// invocation's caller (CloudBase's WX_ and TCB_ keys) rather than the
// function.
func invocationKey(k string) bool {
	return strings.HasPrefix(k, "WX_") || strings.HasPrefix(k, "TCB_")
}

func errorResponse(err error) *messages.InvokeResponse_Error {
	return &messages.InvokeResponse_Error{Message: err.Error(), Type: typeName(err)}
}

// typeName is the library's error type: the name of the (pointed-to) type.
func typeName(v any) string {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer {
		return t.Elem().Name()
	}
	return t.Name()
}

// panicStack is the library's stack trace of a panic, frames as
// path/relative/to/package.go, line and Type.Method label.
func panicStack() []*messages.InvokeResponse_Error_StackFrame {
	pcs := make([]uintptr, 32)
	// runtime.Callers, panicStack, the deferred func in invokeRPC.
	n := runtime.Callers(3, pcs)
	out := make([]*messages.InvokeResponse_Error_StackFrame, 0, n)
	if n == 0 {
		return out
	}
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		path, label := f.File, f.Function
		i := len(path)
		for k, g := 0, strings.Count(label, "/")+2; k < g; k++ {
			if i = strings.LastIndex(path[:i], "/"); i == -1 {
				break
			}
		}
		path = path[i+1:]
		label = label[strings.LastIndex(label, "/")+1:]
		label = label[strings.Index(label, ".")+1:]
		out = append(out, &messages.InvokeResponse_Error_StackFrame{Path: path, Line: int32(f.Line), Label: label})
		if !more {
			break
		}
	}
	return out
}
