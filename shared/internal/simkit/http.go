package simkit

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
)

// MaxJSONBody bounds the control API's request bodies.
const MaxJSONBody = 64 << 10

// WriteJSON answers status with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// DecodeJSON decodes r's body (at most MaxJSONBody bytes, no unknown
// fields) into v. An empty body is io.EOF; the caller writes the error
// reply.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxJSONBody))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// Drain reads and discards what is left of a body, so the connection can be
// reused, bounding the read to stay cheap, and closes it.
func Drain(r io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, r, 64<<10)
	_ = r.Close()
}

// RandFrom returns n characters drawn uniformly from alphabet with
// crypto/rand: simulated ids (trade numbers, serials) must not collide
// across restarts.
func RandFrom(alphabet string, n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil { // crypto/rand does not fail on supported platforms
			v = big.NewInt(int64(i % len(alphabet)))
		}
		b[i] = alphabet[v.Int64()]
	}
	return string(b)
}

// RandHex returns nBytes random bytes in hex.
func RandHex(nBytes int) string {
	b := make([]byte, nBytes)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
