package wxpay_test

import (
	"errors"
	"testing"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/wxpay"
)

func rotationTx(no string) paysim.Transaction {
	return paysim.Transaction{
		AppID: appID, MchID: mchID, OutTradeNo: no, TransactionID: "4200000000202401011234567890",
		TradeState: "SUCCESS", SuccessTime: "2024-01-01T10:00:00+08:00", Amount: &paysim.Amount{Total: 1, Currency: "CNY"},
	}
}

func TestNotificationsDecryptWithTheCurrentOrThePreviousAPIv3Key(t *testing.T) {
	sim := startSim(t, nil)
	newKey := "NEWNEWNEWNEWNEWNEWNEWNEWNEWNEW32"
	cfg := config(sim, "https://merchant.example.com/notify")
	cfg.APIv3Key, cfg.APIv3KeyPrevious = newKey, apiV3Key
	ch := newChannel(t, cfg)
	for name, key := range map[string]string{"previous": apiV3Key, "current": newKey} {
		h, body, err := sim.BuildNotification(rotationTx("ROT_"+name), paysim.NotifyOptions{APIv3Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := ch.ParseNotification(ctxTimeout(t), h, body); err != nil || n.Transaction.OutTradeNo != "ROT_"+name {
			t.Errorf("encrypted with the %s key: %+v, %v", name, n, err)
		}
	}
	h, body, _ := sim.BuildNotification(rotationTx("ROT_OTHER"), paysim.NotifyOptions{APIv3Key: "ffffffffffffffffffffffffffffffff"})
	if _, err := ch.ParseNotification(ctxTimeout(t), h, body); !errors.Is(err, app.ErrBadNotification) {
		t.Errorf("a third key: %v, want ErrBadNotification", err)
	}
	cfg.APIv3KeyPrevious = "short"
	if _, err := wxpay.New(cfg); err == nil {
		t.Error("a previous APIv3 key that is not 32 bytes was accepted")
	}
}

func TestBothPublicKeysVerifyDuringASwitch(t *testing.T) {
	for _, combined := range []bool{false, true} {
		sim := startSim(t, nil)
		old := sim.Keys()
		const newID = "PUB_KEY_ID_0114232019092000000000000000000001"
		cfg := config(sim, "https://merchant.example.com/notify")
		cfg.PublicKeyID, cfg.PublicKey = newID, &otherKey.PublicKey
		cfg.PublicKeyIDPrevious, cfg.PublicKeyPrevious = old.PublicKeyID, old.PublicKey
		cfg.PlatformCerts = combined
		ch := newChannel(t, cfg)
		good := map[string]paysim.NotifyOptions{
			"previous key": {},
			"new key":      {SignWith: otherKey, Serial: newID},
		}
		if combined {
			good["platform certificate"] = paysim.NotifyOptions{Serial: old.PlatformCertSerial}
		}
		for name, o := range good {
			h, body, err := sim.BuildNotification(rotationTx("PK_OK"), o)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ch.ParseNotification(ctxTimeout(t), h, body); err != nil {
				t.Errorf("combined=%v, signed with the %s: %v", combined, name, err)
			}
		}
		bad := map[string]paysim.NotifyOptions{
			"new key under the old id": {SignWith: otherKey},
			"old key under the new id": {Serial: newID},
			"unknown id":               {Serial: "PUB_KEY_ID_0000000000000000000000000000000099"},
		}
		for name, o := range bad {
			h, body, _ := sim.BuildNotification(rotationTx("PK_BAD"), o)
			if _, err := ch.ParseNotification(ctxTimeout(t), h, body); !errors.Is(err, app.ErrBadNotification) {
				t.Errorf("combined=%v, %s: %v, want ErrBadNotification", combined, name, err)
			}
		}
		// API replies are still signed with the previous key by the simulator.
		if _, err := ch.QueryOrder(ctxTimeout(t), "NO_SUCH_ORDER"); !errors.Is(err, app.ErrTradeNotFound) {
			t.Errorf("combined=%v: a reply signed with the previous key: %v, want a verified ErrTradeNotFound", combined, err)
		}
	}
}
