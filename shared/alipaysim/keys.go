package alipaysim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Files written to (and read back from) Options.DataDir. The names follow
// what Alipay's open platform hands merchants, so outside tools find them
// where they expect.
const (
	FileAlipayPrivateKey = "alipay_private_key.pem"       // PKCS#8: the simulator's "Alipay" key (act as Alipay)
	FileAlipayPublicKey  = "alipay_public_key.pem"        // PKIX: 支付宝公钥 (public-key mode)
	FileAppPrivateKey    = "app_private_key.pem"          // PKCS#8: 应用私钥 (only when the simulator generated it)
	FileAppPublicKey     = "app_public_key.pem"           // PKIX: 应用公钥
	FileRootCAKey        = "alipay_root_ca_key.pem"       // PKCS#8: the root CA key that issued both certificates
	FileRootCert         = "alipayRootCert.crt"           // 支付宝根证书 (RSA root + an ECDSA root, as Alipay's has several)
	FileAlipayCert       = "alipayCertPublicKey_RSA2.crt" // 支付宝公钥证书
	FileAppCert          = "appCertPublicKey.crt"         // 应用公钥证书
	FileState            = "alipaysim-state.json"         // trades and refunds
)

// Keys are the simulator's identifiers, keys and certificates, for tools
// that act as Alipay (forging notifications) or as the merchant (configuring
// an Alipay client against the simulator). LogValue redacts the private
// parts.
type Keys struct {
	AppID    string `json:"app_id"`
	SellerID string `json:"seller_id"`
	CertMode bool   `json:"cert_mode"`

	AlipayPrivateKeyPEM string         `json:"alipay_private_key_pem"` // PKCS#8
	AlipayPublicKeyPEM  string         `json:"alipay_public_key_pem"`  // PKIX
	AlipayPublicKey     *rsa.PublicKey `json:"-"`

	// AppPrivateKeyPEM and AppPrivateKey are empty when Options gave only
	// the app public key.
	AppPrivateKeyPEM string          `json:"app_private_key_pem,omitempty"` // PKCS#8
	AppPrivateKey    *rsa.PrivateKey `json:"-"`
	AppPublicKeyPEM  string          `json:"app_public_key_pem"` // PKIX
	AppPublicKey     *rsa.PublicKey  `json:"-"`

	// Certificate mode only.
	RootCertPEM   string `json:"root_cert_pem,omitempty"`   // alipayRootCert.crt
	AlipayCertPEM string `json:"alipay_cert_pem,omitempty"` // alipayCertPublicKey_RSA2.crt
	AppCertPEM    string `json:"app_cert_pem,omitempty"`    // appCertPublicKey.crt
	RootCertSN    string `json:"alipay_root_cert_sn,omitempty"`
	AlipayCertSN  string `json:"alipay_cert_sn,omitempty"`
	AppCertSN     string `json:"app_cert_sn,omitempty"`
}

// LogValue keeps the private keys out of logs.
func (k Keys) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("app_id", k.AppID),
		slog.String("seller_id", k.SellerID),
		slog.Bool("cert_mode", k.CertMode),
		slog.String("alipay_cert_sn", k.AlipayCertSN),
		slog.String("app_cert_sn", k.AppCertSN),
		slog.String("alipay_root_cert_sn", k.RootCertSN),
	)
}

// keyring is the key material a Server works with.
type keyring struct {
	alipayKey *rsa.PrivateKey
	appKey    *rsa.PrivateKey // nil when only the public key is known
	appPub    *rsa.PublicKey

	rootKey                         *rsa.PrivateKey
	rootPEM, alipayCertPEM, appPEM  []byte
	rootSN, alipayCertSN, appCertSN string
}

func genRSA() (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate RSA key: %w", err)
	}
	return k, nil
}

func privatePEM(k *rsa.PrivateKey) []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(k) // cannot fail for an RSA key
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func publicPEM(k *rsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(k) // cannot fail for an RSA key
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePrivateKey reads an RSA private key in PEM, PKCS#8 or PKCS#1.
func ParsePrivateKey(b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%T is not an RSA key", k)
	}
	return rk, nil
}

// ParsePublicKey reads an RSA public key in PEM, PKIX or PKCS#1.
func ParsePublicKey(b []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS1PublicKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%T is not an RSA key", k)
	}
	return rk, nil
}

func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate found")
	}
	return certs, nil
}

// privateKeyFile loads dir/name when it exists (refusing one that differs
// from given), else uses given or a new key and writes it there. dir ""
// keeps everything in memory.
func privateKeyFile(dir, name string, given *rsa.PrivateKey) (*rsa.PrivateKey, error) {
	if dir != "" {
		b, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case err == nil:
			k, err := ParsePrivateKey(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if given != nil && !given.Equal(k) {
				return nil, fmt.Errorf("%s in %s differs from the key in Options (delete it to use the new one)", name, dir)
			}
			return k, nil
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	k := given
	if k == nil {
		var err error
		if k, err = genRSA(); err != nil {
			return nil, err
		}
	}
	if dir != "" {
		if err := writeFile(dir, name, privatePEM(k), 0o600); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func writeFile(dir, name string, b []byte, perm os.FileMode) error {
	if err := os.WriteFile(filepath.Join(dir, name), b, perm); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// loadKeys builds the keyring from opts, reading and writing opts.DataDir.
func loadKeys(opts Options, now time.Time) (*keyring, error) {
	dir := opts.DataDir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
	}
	kr := &keyring{}
	var err error
	if kr.alipayKey, err = privateKeyFile(dir, FileAlipayPrivateKey, opts.AlipayKey); err != nil {
		return nil, err
	}
	if dir != "" {
		if err := writeFile(dir, FileAlipayPublicKey, publicPEM(&kr.alipayKey.PublicKey), 0o644); err != nil {
			return nil, err
		}
	}
	switch {
	case opts.AppPublicKey != nil && opts.AppKey == nil:
		kr.appPub = opts.AppPublicKey
		if dir != "" {
			if b, err := os.ReadFile(filepath.Join(dir, FileAppPublicKey)); err == nil {
				if k, err := ParsePublicKey(b); err != nil || !k.Equal(opts.AppPublicKey) {
					return nil, fmt.Errorf("%s in %s differs from Options.AppPublicKey (delete it to use the new one)", FileAppPublicKey, dir)
				}
			}
			// A private key generated by an earlier run no longer matches.
			if _, err := os.Stat(filepath.Join(dir, FileAppPrivateKey)); err == nil {
				return nil, fmt.Errorf("%s in %s belongs to a generated app key, but Options.AppPublicKey is set (delete it)", FileAppPrivateKey, dir)
			}
		}
	default:
		if opts.AppKey != nil && opts.AppPublicKey != nil && !opts.AppKey.PublicKey.Equal(opts.AppPublicKey) {
			return nil, errors.New("AppKey and AppPublicKey do not match")
		}
		if kr.appKey, err = privateKeyFile(dir, FileAppPrivateKey, opts.AppKey); err != nil {
			return nil, err
		}
		kr.appPub = &kr.appKey.PublicKey
	}
	if dir != "" {
		if err := writeFile(dir, FileAppPublicKey, publicPEM(kr.appPub), 0o644); err != nil {
			return nil, err
		}
	}
	if !opts.CertMode {
		return kr, nil
	}
	if kr.rootKey, err = privateKeyFile(dir, FileRootCAKey, opts.RootKey); err != nil {
		return nil, err
	}
	if dir != "" && kr.loadCerts(dir) {
		return kr, nil
	}
	if err := kr.makeCerts(opts.AppID, now); err != nil {
		return nil, err
	}
	if dir != "" {
		for name, b := range map[string][]byte{FileRootCert: kr.rootPEM, FileAlipayCert: kr.alipayCertPEM, FileAppCert: kr.appPEM} {
			if err := writeFile(dir, name, b, 0o644); err != nil {
				return nil, err
			}
		}
	}
	return kr, nil
}

// loadCerts reads the three certificates from dir and keeps them if they
// are there, were issued by the root key and carry the current keys;
// otherwise it reports false and new ones are made.
func (kr *keyring) loadCerts(dir string) bool {
	read := func(name string) []byte {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return b
	}
	rootPEM, alipayPEM, appPEM := read(FileRootCert), read(FileAlipayCert), read(FileAppCert)
	roots, err1 := parseCerts(rootPEM)
	alipay, err2 := parseCerts(alipayPEM)
	app, err3 := parseCerts(appPEM)
	if err1 != nil || err2 != nil || err3 != nil {
		return false
	}
	rootPub, ok := roots[0].PublicKey.(*rsa.PublicKey)
	if !ok || !rootPub.Equal(&kr.rootKey.PublicKey) {
		return false
	}
	if pub, ok := alipay[0].PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&kr.alipayKey.PublicKey) || alipay[0].CheckSignatureFrom(roots[0]) != nil {
		return false
	}
	if pub, ok := app[0].PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(kr.appPub) || app[0].CheckSignatureFrom(roots[0]) != nil {
		return false
	}
	rootSN, err := RootCertSN(rootPEM)
	if err != nil {
		return false
	}
	kr.rootPEM, kr.alipayCertPEM, kr.appPEM = rootPEM, alipayPEM, appPEM
	kr.rootSN, kr.alipayCertSN, kr.appCertSN = rootSN, CertSN(alipay[0]), CertSN(app[0])
	return true
}

func randSerial() *big.Int {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[0] = 0x10 + b[0]%0x70 // positive, 16 octets
	return new(big.Int).SetBytes(b)
}

// makeCerts issues the certificate set: an RSA root (sha256WithRSA) plus an
// ECDSA root in the root file, as Alipay's root file mixes algorithms (only
// the RSA one counts for alipay_root_cert_sn), and the Alipay and app public
// key certificates, both issued by the RSA root.
func (kr *keyring) makeCerts(appID string, now time.Time) error {
	notBefore, notAfter := now.Add(-time.Hour), now.AddDate(10, 0, 0)
	rootTmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject: pkix.Name{Country: []string{"CN"}, Organization: []string{"Ant Financial (alipaysim)"},
			OrganizationalUnit: []string{"Certification Authority"}, CommonName: "Ant Financial Certification Authority R1 (alipaysim)"},
		NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:           x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SignatureAlgorithm: x509.SHA256WithRSA,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &kr.rootKey.PublicKey, kr.rootKey)
	if err != nil {
		return fmt.Errorf("create root certificate: %w", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return err
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate ECDSA root key: %w", err)
	}
	ecTmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject: pkix.Name{Country: []string{"CN"}, Organization: []string{"Ant Financial (alipaysim)"},
			OrganizationalUnit: []string{"Certification Authority"}, CommonName: "Ant Financial Certification Authority E1 (alipaysim)"},
		NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	ecDER, err := x509.CreateCertificate(rand.Reader, ecTmpl, ecTmpl, &ecKey.PublicKey, ecKey)
	if err != nil {
		return fmt.Errorf("create ECDSA root certificate: %w", err)
	}
	leaf := func(cn, ou string, pub *rsa.PublicKey) ([]byte, *x509.Certificate, error) {
		tmpl := &x509.Certificate{
			SerialNumber: randSerial(),
			Subject: pkix.Name{Country: []string{"CN"}, Organization: []string{"alipaysim"},
				OrganizationalUnit: []string{ou}, CommonName: cn},
			NotBefore: notBefore, NotAfter: notAfter,
			KeyUsage:           x509.KeyUsageDigitalSignature,
			SignatureAlgorithm: x509.SHA256WithRSA,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, root, pub, kr.rootKey)
		if err != nil {
			return nil, nil, fmt.Errorf("create %s certificate: %w", cn, err)
		}
		c, err := x509.ParseCertificate(der)
		return der, c, err
	}
	alipayDER, alipayCert, err := leaf("alipaysim Alipay public key", "Alipay", &kr.alipayKey.PublicKey)
	if err != nil {
		return err
	}
	appDER, appCert, err := leaf(appID, "Alipay Open Platform app", kr.appPub)
	if err != nil {
		return err
	}
	enc := func(ders ...[]byte) []byte {
		var buf bytes.Buffer
		for _, d := range ders {
			_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: d})
		}
		return buf.Bytes()
	}
	kr.rootPEM = enc(rootDER, ecDER)
	kr.alipayCertPEM = enc(alipayDER)
	kr.appPEM = enc(appDER)
	if kr.rootSN, err = RootCertSN(kr.rootPEM); err != nil {
		return err
	}
	kr.alipayCertSN, kr.appCertSN = CertSN(alipayCert), CertSN(appCert)
	return nil
}

// Keys returns the simulator's identifiers, keys and certificates.
func (s *Server) Keys() Keys {
	kr := s.keys
	k := Keys{
		AppID: s.appID, SellerID: s.sellerID, CertMode: s.certMode,
		AlipayPrivateKeyPEM: string(privatePEM(kr.alipayKey)),
		AlipayPublicKeyPEM:  string(publicPEM(&kr.alipayKey.PublicKey)),
		AlipayPublicKey:     &kr.alipayKey.PublicKey,
		AppPublicKeyPEM:     string(publicPEM(kr.appPub)),
		AppPublicKey:        kr.appPub,
		AppPrivateKey:       kr.appKey,
	}
	if kr.appKey != nil {
		k.AppPrivateKeyPEM = string(privatePEM(kr.appKey))
	}
	if s.certMode {
		k.RootCertPEM, k.AlipayCertPEM, k.AppCertPEM = string(kr.rootPEM), string(kr.alipayCertPEM), string(kr.appPEM)
		k.RootCertSN, k.AlipayCertSN, k.AppCertSN = kr.rootSN, kr.alipayCertSN, kr.appCertSN
	}
	return k
}
