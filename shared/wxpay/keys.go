package wxpay

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
)

// Key rotation: while a key changes, the channel holds the current key and
// the previous one. Requests are always signed with the configured merchant
// key (a new one takes effect when the channel is rebuilt with it); what
// WeChat Pay sends is accepted under either key of a pair.

func newAEAD(key string) (cipher.AEAD, error) {
	block, err := aes.NewCipher([]byte(key))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// open decrypts a notification resource with the APIv3 key, or else the
// previous one. The ciphertext is opened in place only when no second
// attempt can follow: a failed Open clears its output.
func (c *Channel) open(ciphertext, nonce, associatedData []byte) ([]byte, error) {
	if c.aeadPrev == nil {
		return c.aead.Open(ciphertext[:0], nonce, ciphertext, associatedData)
	}
	if plaintext, err := c.aead.Open(nil, nonce, ciphertext, associatedData); err == nil {
		return plaintext, nil
	}
	return c.aeadPrev.Open(ciphertext[:0], nonce, ciphertext, associatedData)
}

// isPublicKeyID reports whether serial names one of the configured WeChat
// Pay public keys (not a platform certificate).
func (c *Channel) isPublicKeyID(serial string) bool {
	return serial != "" && (serial == c.cfg.PublicKeyID || serial == c.cfg.PublicKeyIDPrevious)
}

// keysVerifier verifies by Wechatpay-Serial with the current or the previous
// public key, and any other serial with the platform certificates when
// they are accepted (certs non-nil).
type keysVerifier struct {
	advertised string
	keys       map[string]auth.Verifier
	certs      auth.Verifier
}

func newKeysVerifier(cfg Config, certs core.CertificateGetter) *keysVerifier {
	v := &keysVerifier{advertised: cfg.PublicKeyIDPrevious, keys: map[string]auth.Verifier{
		cfg.PublicKeyID:         verifiers.NewSHA256WithRSAPubkeyVerifier(cfg.PublicKeyID, *cfg.PublicKey),
		cfg.PublicKeyIDPrevious: verifiers.NewSHA256WithRSAPubkeyVerifier(cfg.PublicKeyIDPrevious, *cfg.PublicKeyPrevious),
	}}
	if cfg.PlatformCerts && certs != nil {
		v.certs = verifiers.NewSHA256WithRSAVerifier(certs)
	}
	return v
}

var errUnknownSerial = errors.New("no WeChat Pay public key has this serial")

func (v *keysVerifier) Verify(ctx context.Context, serial, message, signature string) error {
	if k, ok := v.keys[serial]; ok {
		return k.Verify(ctx, serial, message, signature)
	}
	if v.certs != nil {
		return v.certs.Verify(ctx, serial, message, signature)
	}
	return errUnknownSerial
}

// GetSerial is the key the SDK asks WeChat Pay to sign its replies with
// (the request's Wechatpay-Serial): during a switch the previous one, which
// WeChat Pay certainly still holds; replies signed with either verify. Once
// the previous key is removed from the settings, requests name the new one.
func (v *keysVerifier) GetSerial(context.Context) (string, error) { return v.advertised, nil }
