package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// ErrInvalidURL: an endpoint URL is not an absolute http(s) URL with a host,
// carries userinfo, or (for CheckURL without allowPrivate) is not https.
var ErrInvalidURL = errors.New("webhook: invalid endpoint URL")

// ErrForbiddenAddress: the endpoint is, or resolves to, an address payfn must
// not connect to (loopback, private, link-local, …) and private targets are
// not allowed.
var ErrForbiddenAddress = errors.New("webhook: endpoint address not allowed")

// CheckURL validates an endpoint URL when it is registered: absolute http or
// https, a host, no userinfo (credentials in URLs end up in logs), a valid
// port. Unless allowPrivate, it also requires https and rejects hosts that
// are a non-public IP literal, "localhost", or a numeric form some resolvers
// read as an IPv4 address ("2130706433", "127.1", "0x7f.1").
//
// A hostname that passes may still resolve to a private address, now or
// later (DNS rebinding); the Sender checks the resolved address at connect
// time, so CheckURL is for early, friendly rejection, not the enforcement.
func CheckURL(raw string, allowPrivate bool) error {
	u, err := parseTarget(raw)
	if err != nil {
		return err
	}
	if allowPrivate {
		return nil
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q, https required", ErrInvalidURL, u.Scheme)
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if reason := forbidden(ip); reason != "" {
			return fmt.Errorf("%w: %s is %s", ErrForbiddenAddress, ip, reason)
		}
		return nil
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return fmt.Errorf("%w: %s is loopback", ErrForbiddenAddress, host)
	}
	if numericHost(h) {
		return fmt.Errorf("%w: host %q looks like an IPv4 address in a non-standard form", ErrInvalidURL, host)
	}
	return nil
}

// parseTarget holds the checks every send makes, whatever allowPrivate.
// Errors name the scheme or host, never the whole URL: a query string may
// hold the receiver's token.
func parseTarget(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the raw URL
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: scheme %q, want http or https", ErrInvalidURL, u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: no host", ErrInvalidURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: userinfo is not allowed (host %s)", ErrInvalidURL, u.Hostname())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: port %q (host %s)", ErrInvalidURL, p, u.Hostname())
		}
	}
	return u, nil
}

// numericHost reports a host whose last label is numeric (decimal or 0x
// hex): WHATWG URL parsing and inet_aton treat such hosts as IPv4 addresses,
// which is a classic way around literal-address checks.
func numericHost(h string) bool {
	last := h[strings.LastIndexByte(h, '.')+1:]
	if last == "" {
		return false
	}
	if strings.HasPrefix(last, "0x") {
		return true
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

// refuseNonPublic is the net.Dialer Control hook. It runs after DNS
// resolution on the exact address being connected to, for every attempt
// (including Happy Eyeballs fallbacks and redials on a reused Transport), so
// a name that resolves to a public address at registration and to a private
// one later (DNS rebinding) is still refused.
func refuseNonPublic(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dial address %q (%s)", ErrForbiddenAddress, address, network)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		// Fail closed: Control always receives a resolved IP.
		return fmt.Errorf("%w: dial address %q is not an IP", ErrForbiddenAddress, host)
	}
	if reason := forbidden(ip); reason != "" {
		return fmt.Errorf("%w: %s is %s", ErrForbiddenAddress, ip, reason)
	}
	return nil
}

type blocked struct {
	prefix netip.Prefix
	reason string
}

// Ranges not covered by netip's predicates that must not be reachable from
// a server that posts to customer-supplied URLs.
var blockedPrefixes = []blocked{
	{netip.MustParsePrefix("0.0.0.0/8"), "'this network'"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved or broadcast"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)"},
}

var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
)

// forbidden returns why ip must not be dialled, or "" if it is public.
func forbidden(ip netip.Addr) string {
	ip = ip.WithZone("").Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	switch {
	case !ip.IsValid():
		return "not a valid address"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsLinkLocalUnicast():
		return "link-local (cloud metadata lives here)"
	case ip.IsMulticast():
		return "multicast"
	case ip.IsPrivate():
		return "private"
	}
	for _, b := range blockedPrefixes {
		if b.prefix.Contains(ip) {
			return b.reason
		}
	}
	// IPv6 forms that route to an embedded IPv4 address: judge that address.
	if ip.Is6() {
		a := ip.As16()
		var v4 netip.Addr
		switch {
		case nat64.Contains(ip):
			v4 = netip.AddrFrom4([4]byte{a[12], a[13], a[14], a[15]})
		case sixTo4.Contains(ip):
			v4 = netip.AddrFrom4([4]byte{a[2], a[3], a[4], a[5]})
		}
		if v4.IsValid() {
			if reason := forbidden(v4); reason != "" {
				return "an IPv6 form of " + v4.String() + ", which is " + reason
			}
		}
	}
	return ""
}
