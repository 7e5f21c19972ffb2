package alipaysim_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/smartwalle/alipay/v3"

	"github.com/payfn/payfn/shared/alipaysim"
)

// sdkClient is the real smartwalle/alipay client (the library payfn's
// Alipay channel uses) pointed at the simulator as its gateway.
func sdkClient(t testing.TB, sim *alipaysim.Server) *alipay.Client {
	t.Helper()
	k := sim.Keys()
	c, err := alipay.New(appID, k.AppPrivateKeyPEM, false,
		alipay.WithSandboxGateway(sim.GatewayURL()),
		alipay.WithTimeLocation(time.FixedZone("CST", 8*3600)))
	if err != nil {
		t.Fatal(err)
	}
	if k.CertMode {
		for name, err := range map[string]error{
			"app cert":    c.LoadAppCertPublicKey(k.AppCertPEM),
			"root cert":   c.LoadAliPayRootCert(k.RootCertPEM),
			"alipay cert": c.LoadAlipayCertPublicKey(k.AlipayCertPEM),
		} {
			if err != nil {
				t.Fatalf("load %s: %v", name, err)
			}
		}
	} else if err := c.LoadAliPayPublicKey(k.AlipayPublicKeyPEM); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSmartwalleClient runs the whole contract through smartwalle/alipay
// v3 in both key modes: its request signatures verify, its reply and
// notification verification accept the simulator's, and the certificate
// SNs it computes match.
func TestSmartwalleClient(t *testing.T) {
	for _, certMode := range []bool{false, true} {
		t.Run(map[bool]string{false: "public-key", true: "cert"}[certMode], func(t *testing.T) {
			sim := startSim(t, func(o *alipaysim.Options) { o.CertMode = certMode })
			cl := sdkClient(t, sim)
			notes := make(chan *alipay.Notification, 10)
			rc := newReceiver(t, func(_ int, form url.Values) (int, string) {
				n, err := cl.DecodeNotification(form)
				if err != nil {
					t.Errorf("DecodeNotification: %v", err)
					return http.StatusOK, "fail"
				}
				notes <- n
				return http.StatusOK, "success"
			})
			ctx := ctxTimeout(t)

			q, err := cl.TradeQuery(ctx, alipay.TradeQuery{OutTradeNo: "SW_NONE"})
			if err != nil || q.Code != alipay.CodeBusinessFailed || q.SubCode != "ACQ.TRADE_NOT_EXIST" {
				t.Fatalf("query unknown: %+v %v", q, err)
			}

			// Mini-program: create, pay, notification, query.
			cr, err := cl.TradeCreate(ctx, alipay.TradeCreate{
				Trade:       alipay.Trade{NotifyURL: rc.url(), Subject: "小程序", OutTradeNo: "SW_MINI", TotalAmount: "6.66", ProductCode: "JSAPI_PAY"},
				BuyerOpenId: "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5", OpAppId: appID,
			})
			if err != nil || !cr.IsSuccess() || cr.TradeNo == "" {
				t.Fatalf("TradeCreate: %+v %v", cr, err)
			}
			if _, err := sim.PayTrade(ctx, cr.TradeNo, alipaysim.PayOptions{}); err != nil {
				t.Fatal(err)
			}
			n := <-notes
			if n.TradeStatus != alipay.TradeStatusSuccess || n.TotalAmount != "6.66" || n.TradeNo != cr.TradeNo || n.AppId != appID {
				t.Errorf("notification: %+v", n)
			}
			q, err = cl.TradeQuery(ctx, alipay.TradeQuery{OutTradeNo: "SW_MINI"})
			if err != nil || q.TradeStatus != alipay.TradeStatusSuccess || q.BuyerPayAmount != "6.66" {
				t.Errorf("TradeQuery: %+v %v", q, err)
			}

			// Refunds.
			rf, err := cl.TradeRefund(ctx, alipay.TradeRefund{OutTradeNo: "SW_MINI", RefundAmount: "1.66", OutRequestNo: "SW_R1"})
			if err != nil || !rf.IsSuccess() || rf.FundChange != "Y" || rf.RefundFee != "1.66" {
				t.Errorf("TradeRefund: %+v %v", rf, err)
			}
			if n := <-notes; n.RefundFee != "1.66" || n.OutBizNo != "SW_R1" || n.GmtRefund == "" {
				t.Errorf("refund notification: %+v", n)
			}
			rq, err := cl.TradeFastPayRefundQuery(ctx, alipay.TradeFastPayRefundQuery{OutTradeNo: "SW_MINI", OutRequestNo: "SW_R1"})
			if err != nil || rq.RefundStatus != "REFUND_SUCCESS" || rq.RefundAmount != "1.66" {
				t.Errorf("TradeFastPayRefundQuery: %+v %v", rq, err)
			}
			rf, err = cl.TradeRefund(ctx, alipay.TradeRefund{OutTradeNo: "SW_MINI", RefundAmount: "5.01", OutRequestNo: "SW_R2"})
			if err != nil || rf.SubCode != "ACQ.REASON_TRADE_REFUND_FEE_ERR" {
				t.Errorf("over-refund: %+v %v", rf, err)
			}

			// Close an unpaid one.
			cr2, err := cl.TradeCreate(ctx, alipay.TradeCreate{Trade: alipay.Trade{Subject: "s", OutTradeNo: "SW_CLOSE", TotalAmount: "1", ProductCode: "JSAPI_PAY"}, BuyerId: "2088102146225135"})
			if err != nil || !cr2.IsSuccess() {
				t.Fatalf("TradeCreate: %+v %v", cr2, err)
			}
			cl2, err := cl.TradeClose(ctx, alipay.TradeClose{OutTradeNo: "SW_CLOSE"})
			if err != nil || !cl2.IsSuccess() || cl2.TradeNo != cr2.TradeNo {
				t.Errorf("TradeClose: %+v %v", cl2, err)
			}

			// H5: the URL TradeWapPay builds, paid through the cashier page.
			u, err := cl.TradeWapPay(alipay.TradeWapPay{
				Trade:   alipay.Trade{NotifyURL: rc.url(), ReturnURL: "https://shop.example/return", Subject: "H5", OutTradeNo: "SW_H5", TotalAmount: "2.50", ProductCode: "QUICK_WAP_WAY"},
				QuitURL: "https://shop.example/quit",
			})
			if err != nil {
				t.Fatal(err)
			}
			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := noFollow.Get(u.String())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			cashier := resp.Header.Get("Location")
			if !strings.HasPrefix(cashier, "/cashier/") {
				t.Fatalf("wap URL: %d %q %s", resp.StatusCode, cashier, resp.Header.Get("X-Alipaysim-Sub-Code"))
			}
			resp, err = noFollow.Post(sim.URL()+cashier+"/pay", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			ret, _ := url.Parse(resp.Header.Get("Location"))
			if err := cl.VerifySign(ret.Query()); err != nil {
				t.Errorf("return parameters do not verify: %v (%s)", err, ret)
			}
			if n := <-notes; n.OutTradeNo != "SW_H5" || n.TotalAmount != "2.50" {
				t.Errorf("wap notification: %+v", n)
			}

			// A client with the wrong app key is refused with Alipay's code.
			bad, err := alipay.New(appID, string(mustPrivatePEM(otherKey)), false, alipay.WithSandboxGateway(sim.GatewayURL()))
			if err != nil {
				t.Fatal(err)
			}
			k := sim.Keys()
			if certMode {
				_ = bad.LoadAppCertPublicKey(k.AppCertPEM)
				_ = bad.LoadAliPayRootCert(k.RootCertPEM)
				_ = bad.LoadAlipayCertPublicKey(k.AlipayCertPEM)
			} else {
				_ = bad.LoadAliPayPublicKey(k.AlipayPublicKeyPEM)
			}
			q, err = bad.TradeQuery(context.Background(), alipay.TradeQuery{OutTradeNo: "SW_MINI"})
			if err != nil || q.Code != alipay.CodeInvalidParam || q.SubCode != "isv.invalid-signature" {
				t.Errorf("wrong key: %+v %v", q, err)
			}

			// A reply signed over other bytes is rejected by the SDK.
			sim.SetFaults(alipaysim.Faults{BadResponseSignature: true})
			if _, err := cl.TradeQuery(ctx, alipay.TradeQuery{OutTradeNo: "SW_MINI"}); err == nil {
				t.Error("SDK accepted a reply with a bad signature")
			}
		})
	}
}
