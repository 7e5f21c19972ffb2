package serve

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestRequest(t *testing.T) *http.Request {
	t.Helper()
	r, err := NewRequest(context.Background(), Request{Method: "GET", RawPath: "/v1/x", Header: http.Header{}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHeadersChangedAfterWriteHeaderAreNotSent(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		w.Header().Set("X-Late", "1")
		w.WriteHeader(http.StatusTeapot) // superfluous, as on a real server
		io.WriteString(w, "{}")
	})
	got := Handle(h, newTestRequest(t), discardLogger())
	want := Response{Status: http.StatusAccepted, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte("{}")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestMissingContentTypeIsSniffedLikeNetHTTP(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<!DOCTYPE html><html></html>")
	})
	got := Handle(h, newTestRequest(t), discardLogger())
	if ct := got.Header.Get("Content-Type"); got.Status != http.StatusOK || ct != "text/html; charset=utf-8" {
		t.Errorf("status %d, Content-Type %q", got.Status, ct)
	}
}

func TestHandlerThatWritesNothingAnswers200WithEmptyBody(t *testing.T) {
	got := Handle(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), newTestRequest(t), discardLogger())
	want := Response{Status: http.StatusOK, Header: http.Header{}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestNewRequestRejectsInvalidMethodAndPath(t *testing.T) {
	for _, in := range []Request{
		{Method: "GE T", RawPath: "/"},
		{Method: "GET", RawPath: "no-leading-slash"},
	} {
		if _, err := NewRequest(context.Background(), in); err == nil {
			t.Errorf("NewRequest(%+v) error = nil", in)
		}
	}
}
