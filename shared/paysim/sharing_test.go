package paysim_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/wxpay"
)

// The profit-sharing API, driven by payfn's real wxpay channel (which runs
// wechatpay-go's services/profitsharing, names encrypted with the WeChat
// Pay public key) against the simulator over loopback.

const (
	sharingMerchant = "1900000200" // a merchant receiver
	sharingPerson   = "oPerson_receiver_openid_00001"
)

func sharingChannel(t *testing.T, sim *paysim.Server) *wxpay.Channel {
	t.Helper()
	k := sim.Keys()
	ch, err := wxpay.New(wxpay.Config{
		MchID: mchID, AppID: appID, MchCertSerial: merchantSerial, MchPrivateKey: merchantKey, APIv3Key: apiV3Key,
		NotifyURL: "http://127.0.0.1:1/notify", PublicKeyID: k.PublicKeyID, PublicKey: k.PublicKey, BaseURL: sim.URL(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.Close)
	return ch
}

// paidSharing prepays outTradeNo (asking for profit sharing when sharing)
// and pays it; it returns the transaction id.
func paidSharing(t *testing.T, sim *paysim.Server, outTradeNo string, total int64, sharing bool) string {
	t.Helper()
	req := prepayRequest(outTradeNo, "http://127.0.0.1:1/notify", total)
	if sharing {
		req.SettleInfo = &jsapi.SettleInfo{ProfitSharing: core.Bool(true)}
	}
	id := prepay(t, jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}, req)
	paid, err := sim.Pay(context.Background(), id, paysim.PayOptions{NoNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	return paid.TransactionID
}

var (
	merchantReceiver = order.Receiver{Type: order.ReceiverMerchant, Account: sharingMerchant, Name: "深圳某某供应链有限公司", RelationType: "SUPPLIER"}
	personReceiver   = order.Receiver{Type: order.ReceiverPersonal, Account: sharingPerson, RelationType: "CUSTOM", CustomRelation: "推广员"}
)

func addReceivers(t *testing.T, ch *wxpay.Channel) {
	t.Helper()
	for _, r := range []order.Receiver{merchantReceiver, personReceiver} {
		if err := ch.AddReceiver(context.Background(), "", r); err != nil {
			t.Fatalf("AddReceiver %s: %v", r.Account, err)
		}
	}
	// Adding again is harmless, as at WeChat Pay.
	if err := ch.AddReceiver(context.Background(), "", merchantReceiver); err != nil {
		t.Fatalf("AddReceiver again: %v", err)
	}
}

func TestSharingSplitQueryUnfreeze(t *testing.T) {
	sim := startSim(t, nil)
	ch := sharingChannel(t, sim)
	ctx := context.Background()
	tx := paidSharing(t, sim, "SHARE000001", 10000, true)
	addReceivers(t, ch)
	if left, err := ch.UnsplitAmount(ctx, tx); err != nil || left != 10000 {
		t.Fatalf("UnsplitAmount = %d, %v; want 10000", left, err)
	}
	req := app.SplitRequest{TransactionID: tx, OutOrderNo: "PSSHARE000001", Shares: []order.Share{
		{Receiver: merchantReceiver, AmountFen: 2000}, {Receiver: personReceiver, AmountFen: 1000}}}
	first, err := ch.CreateSplit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.State != app.SplitStateProcessing || len(first.Results) != 2 || first.Results[0].Result != app.ShareResultPending {
		t.Fatalf("CreateSplit = %+v; want PROCESSING with 2 PENDING receivers", first)
	}
	again, err := ch.CreateSplit(ctx, req)
	if err != nil || again.OrderID != first.OrderID {
		t.Fatalf("resend = %+v, %v; want the same split %s", again, err, first.OrderID)
	}
	if n := sim.SplitRequests("PSSHARE000001"); n != 2 {
		t.Fatalf("SplitRequests = %d, want 2", n)
	}
	q, err := ch.QuerySplit(ctx, tx, "PSSHARE000001")
	if err != nil || q.State != app.SplitStateProcessing {
		t.Fatalf("first query = %+v, %v; want PROCESSING", q, err)
	}
	q, err = ch.QuerySplit(ctx, tx, "PSSHARE000001")
	if err != nil || q.State != app.SplitStateFinished {
		t.Fatalf("second query = %+v, %v; want FINISHED", q, err)
	}
	for _, r := range q.Results {
		if r.Result != app.ShareResultSuccess {
			t.Fatalf("receiver %+v not SUCCESS", r)
		}
	}
	if left, _ := ch.UnsplitAmount(ctx, tx); left != 7000 {
		t.Fatalf("unsplit after split = %d, want 7000", left)
	}
	if _, err := ch.QuerySplit(ctx, tx, "PUSHARE000001"); !errors.Is(err, app.ErrTradeNotFound) {
		t.Fatalf("query of an unfreeze not made: %v, want ErrTradeNotFound", err)
	}
	u, err := ch.UnfreezeSplit(ctx, tx, "PUSHARE000001", "")
	if err != nil || len(u.Results) != 1 || u.Results[0].AmountFen != 7000 || u.Results[0].Account != mchID {
		t.Fatalf("UnfreezeSplit = %+v, %v; want 7000 fen to the merchant", u, err)
	}
	v := sim.Sharing(tx)
	if !v.Unfrozen || v.UnfrozenFen != 7000 || v.UnsplitFen != 0 {
		t.Fatalf("after unfreeze %+v", v)
	}
	if sim.ReceivedFen(sharingMerchant) != 2000 || sim.ReceivedFen(sharingPerson) != 1000 {
		t.Fatalf("received %d and %d, want 2000 and 1000", sim.ReceivedFen(sharingMerchant), sim.ReceivedFen(sharingPerson))
	}
	// Nothing can be split once unfrozen.
	_, err = ch.CreateSplit(ctx, app.SplitRequest{TransactionID: tx, OutOrderNo: "PSSHARE000001b", Shares: []order.Share{{Receiver: merchantReceiver, AmountFen: 1}}})
	if wxpay.Code(err) != "INVALID_REQUEST" {
		t.Fatalf("split after unfreeze: %v, want INVALID_REQUEST", err)
	}
}

func TestSharingRefusals(t *testing.T) {
	sim := startSim(t, nil)
	ch := sharingChannel(t, sim)
	ctx := context.Background()
	addReceivers(t, ch)
	split := func(tx, no string, shares ...order.Share) error {
		_, err := ch.CreateSplit(ctx, app.SplitRequest{TransactionID: tx, OutOrderNo: no, Shares: shares})
		return err
	}

	plain := paidSharing(t, sim, "SHARE000010", 10000, false)
	if err := split(plain, "PS10", order.Share{Receiver: merchantReceiver, AmountFen: 100}); wxpay.Code(err) != "INVALID_REQUEST" {
		t.Fatalf("split of an order prepaid without profit_sharing: %v, want INVALID_REQUEST", err)
	}
	if _, err := ch.UnsplitAmount(ctx, plain); wxpay.Code(err) != "INVALID_REQUEST" {
		t.Fatalf("amounts of a non-sharing order: %v", err)
	}

	tx := paidSharing(t, sim, "SHARE000011", 10000, true)
	// 30 % of 10000 is 3000: one fen more is refused, whatever the split.
	if err := split(tx, "PS11a", order.Share{Receiver: merchantReceiver, AmountFen: 2001}, order.Share{Receiver: personReceiver, AmountFen: 1000}); wxpay.Code(err) != "INVALID_REQUEST" {
		t.Fatalf("split over 30%%: %v, want INVALID_REQUEST", err)
	}
	if err := split(tx, "PS11b", order.Share{Receiver: merchantReceiver, AmountFen: 2000}); err != nil {
		t.Fatal(err)
	}
	// The ratio counts every split of the payment.
	if err := split(tx, "PS11c", order.Share{Receiver: personReceiver, AmountFen: 1001}); wxpay.Code(err) != "INVALID_REQUEST" {
		t.Fatalf("second split over 30%% in all: %v, want INVALID_REQUEST", err)
	}
	stranger := order.Receiver{Type: order.ReceiverMerchant, Account: "1900000999", Name: "x", RelationType: "PARTNER"}
	if err := split(tx, "PS11d", order.Share{Receiver: stranger, AmountFen: 1}); wxpay.Code(err) != "INVALID_REQUEST" {
		t.Fatalf("split to a receiver never added: %v, want INVALID_REQUEST", err)
	}

	// A refund takes from what is left to split.
	refunded := paidSharing(t, sim, "SHARE000012", 10000, true)
	if _, err := ch.Refund(ctx, app.RefundRequest{OutTradeNo: "SHARE000012", OutRefundNo: "RF12", RefundFen: 8000, TotalFen: 10000}); err != nil {
		t.Fatal(err)
	}
	if left, _ := ch.UnsplitAmount(ctx, refunded); left != 2000 {
		t.Fatalf("unsplit after an 8000 fen refund = %d, want 2000", left)
	}
	if err := split(refunded, "PS12", order.Share{Receiver: merchantReceiver, AmountFen: 2001}); wxpay.Code(err) != "INVALID_REQUEST" {
		t.Fatalf("split over the unsplit amount: %v, want INVALID_REQUEST", err)
	}

	// Too soon after payment.
	sim.SetSharingBehaviour(paysim.SharingBehaviour{MinAfterPay: 1 << 40})
	if err := split(refunded, "PS12b", order.Share{Receiver: merchantReceiver, AmountFen: 1}); wxpay.Code(err) != "INVALID_REQUEST" {
		t.Fatalf("split within a minute of payment: %v, want INVALID_REQUEST", err)
	}
}

func TestSharingReceiverFailureAndReturns(t *testing.T) {
	sim := startSim(t, nil)
	sim.SetSharingBehaviour(paysim.SharingBehaviour{ProcessingQueries: -1, FailAccounts: map[string]string{sharingPerson: "ACCOUNT_ABNORMAL"}})
	ch := sharingChannel(t, sim)
	ctx := context.Background()
	addReceivers(t, ch)
	tx := paidSharing(t, sim, "SHARE000020", 10000, true)
	res, err := ch.CreateSplit(ctx, app.SplitRequest{TransactionID: tx, OutOrderNo: "PS20", Shares: []order.Share{
		{Receiver: merchantReceiver, AmountFen: 2000}, {Receiver: personReceiver, AmountFen: 500}}})
	if err != nil || res.State != app.SplitStateFinished {
		t.Fatalf("CreateSplit = %+v, %v", res, err)
	}
	for _, r := range res.Results {
		want, reason := app.ShareResultSuccess, ""
		if r.Account == sharingPerson {
			want, reason = app.ShareResultClosed, "ACCOUNT_ABNORMAL"
		}
		if r.Result != want || r.FailReason != reason {
			t.Fatalf("receiver %s: %s %q, want %s %q", r.Account, r.Result, r.FailReason, want, reason)
		}
	}
	// The failed share went back to what is left to split.
	if left, _ := ch.UnsplitAmount(ctx, tx); left != 8000 {
		t.Fatalf("unsplit = %d, want 8000", left)
	}

	ret := func(no, account string, amount int64) (app.ReturnResult, error) {
		return ch.CreateReturn(ctx, app.ReturnRequest{OutOrderNo: "PS20", OutReturnNo: no, ReturnMchID: account, AmountFen: amount})
	}
	if r, err := ret("R1", sharingMerchant, 1500); err != nil || r.Result != app.ReturnResultSucceded {
		t.Fatalf("return = %+v, %v", r, err)
	}
	if r, err := ret("R1", sharingMerchant, 1500); err != nil || r.Result != app.ReturnResultSucceded {
		t.Fatalf("same return again = %+v, %v", r, err)
	}
	if _, err := ret("R2", sharingMerchant, 501); wxpay.Code(err) != "INVALID_REQUEST" {
		t.Fatalf("return of more than is left of the share: %v, want INVALID_REQUEST", err)
	}
	if _, err := ret("R3", sharingPerson, 1); wxpay.Code(err) != "INVALID_REQUEST" {
		t.Fatalf("return from a personal receiver: %v, want INVALID_REQUEST", err)
	}
	if q, err := ch.QueryReturn(ctx, "PS20", "R1"); err != nil || q.AmountFen != 1500 || q.Result != app.ReturnResultSucceded {
		t.Fatalf("QueryReturn = %+v, %v", q, err)
	}
	if _, err := ch.QueryReturn(ctx, "PS20", "R9"); !errors.Is(err, app.ErrTradeNotFound) {
		t.Fatalf("query of an unknown return: %v", err)
	}
	if got := sim.ReceivedFen(sharingMerchant); got != 500 {
		t.Fatalf("merchant receiver holds %d, want 500", got)
	}
	sim.SetSharingBehaviour(paysim.SharingBehaviour{FailReturns: map[string]string{sharingMerchant: "BALANCE_NOT_ENOUGH"}})
	if r, err := ret("R4", sharingMerchant, 500); err != nil || r.Result != app.ReturnResultFailed || r.FailReason != "BALANCE_NOT_ENOUGH" {
		t.Fatalf("failing return = %+v, %v", r, err)
	}
}
