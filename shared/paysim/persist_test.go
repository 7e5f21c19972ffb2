package paysim_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"

	"github.com/payfn/payfn/shared/paysim"
)

// TestStateFileKeepsTradesAndRefundsAcrossRestarts is the dev stack's
// restart: what one simulator created, the next one on the same file pays,
// queries and refunds (before, a restart forgot everything and the merchant
// got "unknown prepay_id" and REFUND_REJECTED).
func TestStateFileKeepsTradesAndRefundsAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paysim-state.json")
	withState := func(o *paysim.Options) { o.StatePath = path }
	rc := newReceiver(t, func(int, *http.Request, []byte) int { return http.StatusOK })
	ctx := ctxTimeout(t)

	first := startSim(t, withState)
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, first)}
	paidPrepay := prepay(t, svc, prepayRequest("KEPT_PAID_1", rc.url(), 800))
	paid, err := first.Pay(ctx, paidPrepay, paysim.PayOptions{NoNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	openPrepay := prepay(t, svc, prepayRequest("KEPT_OPEN_1", rc.url(), 300))
	prepay(t, svc, prepayRequest("KEPT_CLOSE_1", rc.url(), 200))
	if err := first.CloseSilently(ctx, "KEPT_CLOSE_1"); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*.tmp")); len(leftovers) > 0 {
		t.Errorf("temporary state files left behind: %v", leftovers)
	}

	second := startSim(t, withState)
	client := publicKeyClient(t, second)
	svc = jsapi.JsapiApiService{Client: client}

	// The paid trade answers queries as before, by either id.
	tx, _, err := svc.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("KEPT_PAID_1"), Mchid: core.String(mchID)})
	if err != nil || *tx.TradeState != "SUCCESS" || *tx.TransactionId != paid.TransactionID {
		t.Fatalf("query after restart: %+v, %v; want SUCCESS %s", tx, err, paid.TransactionID)
	}
	if _, _, err := svc.QueryOrderById(ctx, jsapi.QueryOrderByIdRequest{TransactionId: core.String(paid.TransactionID), Mchid: core.String(mchID)}); err != nil {
		t.Errorf("query by transaction id after restart: %v", err)
	}
	// It cannot be paid twice, and the closed one stays closed.
	if _, err := second.Pay(ctx, paidPrepay, paysim.PayOptions{NoNotify: true}); err == nil {
		t.Error("a paid trade was paid again after restart")
	}
	if ts, ok := second.Trade("KEPT_CLOSE_1"); !ok || ts.TradeState != paysim.StateClosed {
		t.Errorf("closed trade after restart: %+v %v", ts, ok)
	}
	// The open one's prepay_id still pays, and its notification goes out.
	if _, err := second.Pay(ctx, openPrepay, paysim.PayOptions{}); err != nil {
		t.Fatalf("pay after restart: %v", err)
	}
	if err := second.WaitAcked(ctx, "KEPT_OPEN_1"); err != nil {
		t.Fatal(err)
	}
	// And the paid one refunds.
	refunds := refunddomestic.RefundsApiService{Client: client}
	r, _, err := refunds.Create(ctx, refunddomestic.CreateRequest{
		OutTradeNo: core.String("KEPT_PAID_1"), OutRefundNo: core.String("R_KEPT_PAID_1"),
		Amount: &refunddomestic.AmountReq{Refund: core.Int64(800), Total: core.Int64(800), Currency: core.String("CNY")},
	})
	if err != nil || *r.TransactionId != paid.TransactionID {
		t.Fatalf("refund after restart: %+v, %v", r, err)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}

	// A third start sees the refund the second one made.
	third := startSim(t, withState)
	if status, fen, ok := third.RefundState("R_KEPT_PAID_1"); !ok || fen != 800 || status == "" {
		t.Errorf("refund after a second restart: %q %d %v", status, fen, ok)
	}
	if ts, _ := third.Trade("KEPT_OPEN_1"); ts.TradeState != paysim.StateSuccess {
		t.Errorf("trade paid after the first restart is %q after the second", ts.TradeState)
	}
}

func TestUnreadableStateFileIsRefusedWithTheWayOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paysim-state.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	testKeys(t)
	_, err := paysim.New(paysim.Options{
		MchID: mchID, AppID: appID, AppSecret: appSecret, APIv3Key: apiV3Key,
		MerchantSerial: merchantSerial, MerchantPublicKey: &merchantKey.PublicKey, PlatformKey: platformKey,
		StatePath: path,
	})
	if err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("New with a corrupt state file: %v, want an error saying to delete it", err)
	}
}
