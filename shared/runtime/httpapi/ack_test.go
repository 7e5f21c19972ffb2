package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWriteAckMatchesWriteJSON: the precomputed acknowledgement is byte for
// byte, header for header, what writeJSON answered before it.
func TestWriteAckMatchesWriteJSON(t *testing.T) {
	want := httptest.NewRecorder()
	if err := writeJSON(want, http.StatusOK, errorBody{Code: "SUCCESS", Message: "OK"}); err != nil {
		t.Fatal(err)
	}
	got := httptest.NewRecorder()
	if err := writeAck(got); err != nil {
		t.Fatal(err)
	}
	if got.Code != want.Code || got.Body.String() != want.Body.String() {
		t.Errorf("writeAck = %d %q, writeJSON = %d %q", got.Code, got.Body, want.Code, want.Body)
	}
	if diff := cmp.Diff(want.Header(), got.Header()); diff != "" {
		t.Errorf("headers (-writeJSON +writeAck):\n%s", diff)
	}
}
