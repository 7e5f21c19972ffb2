package paysim

import (
	"crypto/rsa"
	"sync"
)

// WeChat Pay lets a merchant hold more than one API certificate at a time,
// which is how a merchant key is rotated without downtime: the new
// certificate is applied for, requests move to it, the old one is revoked.
// AddMerchantCertificate gives the simulator such a second certificate.

type merchantCerts struct {
	mu   sync.Mutex
	keys map[string]*rsa.PublicKey
	used map[string]int
}

func (s *Server) merchantCerts() *merchantCerts {
	s.merchantOnce.Do(func() { s.merchantSt = &merchantCerts{keys: map[string]*rsa.PublicKey{}, used: map[string]int{}} })
	return s.merchantSt
}

// AddMerchantCertificate accepts request signatures made with the merchant
// private key whose certificate has this serial, beside the one in Options.
func (s *Server) AddMerchantCertificate(serial string, pub *rsa.PublicKey) {
	m := s.merchantCerts()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[serial] = pub
}

// RemoveMerchantCertificate revokes a certificate AddMerchantCertificate
// added: requests signed under it are refused from now on.
func (s *Server) RemoveMerchantCertificate(serial string) {
	m := s.merchantCerts()
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, serial)
}

// MerchantSerialsUsed counts the verified API requests per merchant
// certificate serial.
func (s *Server) MerchantSerialsUsed() map[string]int {
	m := s.merchantCerts()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(m.used))
	for k, v := range m.used {
		out[k] = v
	}
	return out
}

// merchantKey returns the public key of the merchant certificate serial
// names, or nil when the simulator knows no such certificate.
func (s *Server) merchantKey(serial string) *rsa.PublicKey {
	if serial == s.merchantSerial {
		return s.merchantPub
	}
	m := s.merchantCerts()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys[serial]
}

func (s *Server) merchantSerialUsed(serial string) {
	m := s.merchantCerts()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.used[serial]++
}
