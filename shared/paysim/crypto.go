package paysim

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/payfn/payfn/shared/internal/simkit"
)

const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

func randAlnum(n int) string    { return simkit.RandFrom(alnum, n) }
func randDigits(n int) string   { return simkit.RandFrom("0123456789", n) }
func randHex(nBytes int) string { return simkit.RandHex(nBytes) }

// randUUID returns a random RFC 4122 version-4 id (36 characters), the shape
// of WeChat's notification ids.
func randUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// signSHA256WithRSA is WeChat's SHA256withRSA: RSASSA-PKCS1-v1_5 over
// SHA-256, standard Base64.
func signSHA256WithRSA(key *rsa.PrivateKey, message string) (string, error) {
	sum := sha256.Sum256([]byte(message))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

func verifySHA256WithRSA(pub *rsa.PublicKey, message, signatureB64 string) error {
	sig, err := base64.StdEncoding.DecodeString(signatureB64)
	if err != nil {
		return fmt.Errorf("signature is not base64: %w", err)
	}
	sum := sha256.Sum256([]byte(message))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
}

// encryptAEAD is AEAD_AES_256_GCM as WeChat uses it: the key is the APIv3
// key's raw bytes, the nonce the raw bytes of a 12-character string, and the
// ciphertext Base64(sealed ‖ tag). Any key or nonce length is accepted on
// purpose, so tests can forge malformed resources.
func encryptAEAD(key, nonce, associatedData string, plaintext []byte) (string, error) {
	block, err := aes.NewCipher([]byte(key))
	if err != nil {
		return "", fmt.Errorf("aes key: %w", err)
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(nonce))
	if err != nil {
		return "", fmt.Errorf("gcm: %w", err)
	}
	sealed := gcm.Seal(nil, []byte(nonce), plaintext, []byte(associatedData))
	return base64.StdEncoding.EncodeToString(sealed), nil
}
