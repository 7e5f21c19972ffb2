package setup_test

import (
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/setup"
)

// During WeChat Pay's move of notifications to the public key, some still
// arrive signed by the platform certificate. WECHATPAY_ACCEPT_PLATFORM_CERTS
// decides whether they are accepted; either way nothing unverified is.
func TestPlatformCertificateNotificationsNeedTheMigrationSetting(t *testing.T) {
	for _, accept := range []bool{false, true} {
		h := newHarnessWith(t, setup.Options{}, func(c *config.Config) { c.AcceptPlatformCerts = accept })
		token := h.login("o-buyer")
		id := h.createOrder(token, "latte", 1)
		h.pay(token, id)
		certSigned := paysim.NotifyOptions{Serial: h.sim.Keys().PlatformCertSerial}

		status, body := h.notify(h.paidTx(id, "o-buyer", 2800), certSigned)
		o := h.order(id)
		if !accept {
			if status != 401 || !strings.Contains(string(body), "INVALID_NOTIFICATION") || o.Status != order.StatusNotPay {
				t.Fatalf("public-key mode alone: answered %d %s, order %s; want 401 INVALID_NOTIFICATION and NOTPAY", status, body, o.Status)
			}
			continue
		}
		if status != 200 || o.Status != order.StatusPaid || len(h.ledger(id)) != 1 {
			t.Fatalf("with the migration setting: answered %d %s, order %s, %d ledger rows; want 200, PAID, 1", status, body, o.Status, len(h.ledger(id)))
		}
		// A certificate serial does not make a forgery acceptable.
		other := h.createOrder(token, "latte", 1)
		h.pay(token, other)
		forged := certSigned
		forged.SignWith = otherKey
		if status, body := h.notify(h.paidTx(other, "o-buyer", 2800), forged); status != 401 || h.order(other).Status != order.StatusNotPay {
			t.Fatalf("forged certificate-signed notification: answered %d %s, order %s", status, body, h.order(other).Status)
		}
	}
}
