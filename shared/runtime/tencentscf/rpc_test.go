package tencentscf

import (
	"context"
	"errors"
	"net"
	"net/rpc"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tencentyun/scf-go-lib/cloudfunction/messages"
	"github.com/tencentyun/scf-go-lib/functioncontext"
)

type testError struct{}

func (*testError) Error() string { return "refused" }

// TestServeRPCSpeaksNetRPC drives serveRPC with the standard net/rpc client,
// the protocol the SCF runtime uses: Ping, Invoke (payload, function
// context, error type), concurrent calls, a panic and unknown methods.
func TestServeRPCSpeaksNetRPC(t *testing.T) {
	server, client := net.Pipe()
	go serveRPC(server, func(ctx context.Context, payload []byte) ([]byte, error) {
		switch string(payload) {
		case "fail":
			return nil, &testError{}
		case "panic":
			panic("boom")
		}
		fc, _ := functioncontext.FromContext(ctx)
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("no deadline")
		}
		return []byte(fc.RequestID + ":" + string(payload)), nil
	})
	c := rpc.NewClient(client)
	defer c.Close()

	if err := c.Call("Function.Ping", &messages.PingRequest{}, &messages.PingResponse{}); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	deadline := messages.InvokeRequest_Timestamp{Seconds: time.Now().Add(time.Minute).Unix()}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := string(rune('a' + i))
			var resp messages.InvokeResponse
			if err := c.Call("Function.Invoke", &messages.InvokeRequest{Payload: []byte("x"), RequestId: id, Deadline: deadline}, &resp); err != nil {
				t.Errorf("Invoke: %v", err)
				return
			}
			if resp.Error != nil || string(resp.Payload) != id+":x" {
				t.Errorf("Invoke = %q, %+v", resp.Payload, resp.Error)
			}
		}()
	}
	wg.Wait()

	var resp messages.InvokeResponse
	if err := c.Call("Function.Invoke", &messages.InvokeRequest{Payload: []byte("fail"), Deadline: deadline}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Error == nil || resp.Error.Message != "refused" || resp.Error.Type != "testError" || resp.Error.ShouldExit {
		t.Errorf("error response = %+v", resp.Error)
	}
	resp = messages.InvokeResponse{}
	if err := c.Call("Function.Invoke", &messages.InvokeRequest{Payload: []byte("panic"), Deadline: deadline}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Error == nil || resp.Error.Message != "boom" || resp.Error.Type != "string" || !resp.Error.ShouldExit || len(resp.Error.StackTrace) == 0 {
		t.Errorf("panic response = %+v", resp.Error)
	}

	err := c.Call("Function.Nope", &messages.PingRequest{}, &messages.PingResponse{})
	if err == nil || !strings.Contains(err.Error(), "can't find method Nope") {
		t.Errorf("unknown method: %v", err)
	}
	err = c.Call("Other.Ping", &messages.PingRequest{}, &messages.PingResponse{})
	if err == nil || !strings.Contains(err.Error(), "can't find service Other.Ping") {
		t.Errorf("unknown service: %v", err)
	}
	// The connection still works after errors.
	if err := c.Call("Function.Ping", &messages.PingRequest{}, &messages.PingResponse{}); err != nil {
		t.Fatalf("Ping after errors: %v", err)
	}
}
