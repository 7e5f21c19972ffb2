package alipaysim

import (
	"crypto"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/payfn/payfn/shared/internal/simkit"
)

// signContent is Alipay's string to sign for a set of parameters: every key
// not in skip whose value is not empty, sorted by key (byte order), joined
// "k=v" with "&". Values are used as received (already URL-decoded once).
// With one value per key this equals what smartwalle/alipay signs.
func signContent(params url.Values, skip ...string) string {
	keys := make([]string, 0, len(params))
	for k, vs := range params {
		if len(vs) == 0 || vs[0] == "" || contains(skip, k) {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(params[k][0])
	}
	return b.String()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// rsa2Sign is Alipay's RSA2: SHA256withRSA (RSASSA-PKCS1-v1_5), standard
// Base64.
func rsa2Sign(key *rsa.PrivateKey, content []byte) (string, error) {
	sum := sha256.Sum256(content)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("rsa2 sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// rsa2Verify checks a Base64 RSA2 signature over content.
func rsa2Verify(pub *rsa.PublicKey, content []byte, sign string) error {
	sig, err := base64.StdEncoding.DecodeString(sign)
	if err != nil {
		return fmt.Errorf("signature is not base64: %w", err)
	}
	sum := sha256.Sum256(content)
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
}

// CertSN is Alipay's certificate serial number ("SN") of a certificate:
// the lowercase hex MD5 of the issuer's distinguished name as Go prints it
// (RFC 2253 order, e.g. "CN=...,OU=...,O=...,C=CN") followed by the serial
// number in decimal. smartwalle/alipay (getCertSN) and gopay compute the
// same.
func CertSN(cert *x509.Certificate) string {
	sum := md5.Sum([]byte(cert.Issuer.String() + cert.SerialNumber.String()))
	return hex.EncodeToString(sum[:])
}

// RootCertSN is Alipay's alipay_root_cert_sn for a root certificate file
// holding several PEM certificates: the SNs of those signed with
// sha1WithRSA or sha256WithRSA, joined with "_" in file order (the others,
// e.g. ECDSA or SM2 roots, are skipped), as smartwalle's LoadAliPayRootCert
// and Alipay's SDKs compute it.
func RootCertSN(pemData []byte) (string, error) {
	certs, err := parseCerts(pemData)
	if err != nil {
		return "", err
	}
	var sns []string
	for _, c := range certs {
		if c.SignatureAlgorithm == x509.SHA256WithRSA || c.SignatureAlgorithm == x509.SHA1WithRSA {
			sns = append(sns, CertSN(c))
		}
	}
	if len(sns) == 0 {
		return "", errors.New("root certificate file holds no RSA-signed certificate")
	}
	return strings.Join(sns, "_"), nil
}

// Amounts on the wire are yuan strings; inside, fen (int64). They are parsed
// exactly, never through floats.

const maxAmountFen = 100_000_000 * 100 // Alipay's upper bound, 100000000 yuan

var errAmount = errors.New("amount must be yuan with at most two decimals")

// parseYuan parses "12", "12.3" or "12.34" into fen. It refuses signs,
// exponents, spaces, a bare or trailing point, more than two decimals,
// leading zeros ("012") and anything above 100000000 yuan. Zero is parsed;
// callers that need a positive amount check it.
func parseYuan(s string) (int64, error) {
	whole, frac, hasPoint := strings.Cut(s, ".")
	if whole == "" || len(whole) > 9 || (hasPoint && (frac == "" || len(frac) > 2)) {
		return 0, errAmount
	}
	if len(whole) > 1 && whole[0] == '0' {
		return 0, errAmount
	}
	var fen int64
	for _, c := range whole {
		if c < '0' || c > '9' {
			return 0, errAmount
		}
		fen = fen*10 + int64(c-'0')
	}
	fen *= 100
	for i, c := range frac {
		if c < '0' || c > '9' {
			return 0, errAmount
		}
		if i == 0 {
			fen += int64(c-'0') * 10
		} else {
			fen += int64(c - '0')
		}
	}
	if fen > maxAmountFen {
		return 0, errAmount
	}
	return fen, nil
}

// yuan formats fen as Alipay does: two decimals ("10.00").
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

const digits = "0123456789"

func randDigits(n int) string   { return simkit.RandFrom(digits, n) }
func randHex(nBytes int) string { return simkit.RandHex(nBytes) }
