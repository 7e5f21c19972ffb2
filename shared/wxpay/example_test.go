package wxpay_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/wxpay"
)

// Example runs the channel against the simulator in public-key mode.
func Example() {
	mchKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	sim, _ := paysim.New(paysim.Options{
		MchID: "1900000109", AppID: "wxd678efh567hg6787", AppSecret: "secret",
		APIv3Key: "0123456789abcdefABCDEFGHIJKLMNOP", MerchantSerial: "3775B6A45ACD588826D15E583A95F5DD12345678",
		MerchantPublicKey: &mchKey.PublicKey,
	})
	_ = sim.Listen("127.0.0.1:0")
	defer sim.Close()
	k := sim.Keys()
	ch, _ := wxpay.New(wxpay.Config{
		MchID: k.MchID, AppID: k.AppID, MchCertSerial: "3775B6A45ACD588826D15E583A95F5DD12345678",
		MchPrivateKey: mchKey, APIv3Key: k.APIv3Key, NotifyURL: "http://127.0.0.1:8080/pay/notify",
		PublicKeyID: k.PublicKeyID, PublicKey: k.PublicKey, BaseURL: sim.URL(),
	})
	defer ch.Close()
	prepayID, err := ch.PrepayID(context.Background(), app.PrepayRequest{
		OutTradeNo: "ORDER_000001", Description: "demo", TotalFen: 100, PayerOpenID: "o_demo",
	})
	fmt.Println(prepayID != "", err)
	// Output: true <nil>
}
