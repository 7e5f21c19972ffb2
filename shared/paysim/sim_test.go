package paysim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/downloader"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/payfn/payfn/shared/paysim"
)

const notifyURL = "https://merchant.example.com/pay/notify"

func TestPrepayQueryCloseInPublicKeyMode(t *testing.T) {
	sim := startSim(t, nil)
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	ctx := ctxTimeout(t)

	id := prepay(t, svc, prepayRequest("ORDER_0001", notifyURL, 990))
	if !strings.HasPrefix(id, "wx") || len(id) != 36 {
		t.Errorf("prepay_id = %q, want wx + 34 characters", id)
	}

	tx, _, err := svc.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("ORDER_0001"), Mchid: core.String(mchID)})
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if *tx.TradeState != "NOTPAY" || *tx.Amount.Total != 990 || tx.TransactionId != nil || tx.SuccessTime != nil || tx.Payer != nil {
		t.Errorf("NOTPAY query = %v, want NOTPAY, total 990, no transaction_id/success_time/payer", tx)
	}

	res, err := svc.CloseOrder(ctx, jsapi.CloseOrderRequest{OutTradeNo: core.String("ORDER_0001"), Mchid: core.String(mchID)})
	if err != nil {
		t.Fatalf("close: %v", err)
	}
	if res.Response.StatusCode != http.StatusNoContent {
		t.Errorf("close status = %d, want 204", res.Response.StatusCode)
	}
	tx, _, err = svc.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("ORDER_0001"), Mchid: core.String(mchID)})
	if err != nil || *tx.TradeState != "CLOSED" {
		t.Fatalf("query after close = %v, %v; want CLOSED", tx, err)
	}
	if _, err := sim.Pay(ctx, id, paysim.PayOptions{}); !errors.Is(err, paysim.ErrOrderClosed) {
		t.Errorf("Pay closed order: err = %v, want ErrOrderClosed", err)
	}
	_, _, err = svc.Prepay(ctx, prepayRequest("ORDER_0001", notifyURL, 990))
	if !core.IsAPIError(err, "ORDER_CLOSED") {
		t.Errorf("prepay of closed order: err = %v, want ORDER_CLOSED", err)
	}
}

func TestUnknownOrderQueryIs404OrderNotExist(t *testing.T) {
	sim := startSim(t, nil)
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	_, _, err := svc.QueryOrderByOutTradeNo(ctxTimeout(t), jsapi.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("NOPE_000001"), Mchid: core.String(mchID)})
	var apiErr *core.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "ORDER_NOT_EXIST" {
		t.Fatalf("err = %v, want 404 ORDER_NOT_EXIST", err)
	}
}

func TestPlatformCertificateModeDownloadsCertificateAndVerifiesReplies(t *testing.T) {
	sim := startSim(t, nil)
	ctx := ctxTimeout(t)
	dl, err := core.NewClient(ctx, option.WithMerchantCredential(mchID, merchantSerial, merchantKey),
		option.WithoutValidator(), option.WithHTTPClient(sim.HTTPClient()))
	if err != nil {
		t.Fatal(err)
	}
	mgr := downloader.NewCertificateDownloaderMgr(ctx)
	t.Cleanup(mgr.Stop)
	if err := mgr.RegisterDownloaderWithClient(ctx, dl, mchID, apiV3Key); err != nil {
		t.Fatalf("certificate download: %v", err)
	}
	if got, want := mgr.GetNewestCertificateSerial(ctx, mchID), sim.Keys().PlatformCertSerial; got != want || len(got) != 40 {
		t.Fatalf("downloaded serial = %q, want %q (40 hex)", got, want)
	}
	c, err := core.NewClient(ctx, option.WithWechatPayAutoAuthCipherUsingDownloaderMgr(mchID, merchantSerial, merchantKey, mgr),
		option.WithHTTPClient(sim.HTTPClient()))
	if err != nil {
		t.Fatal(err)
	}
	svc := jsapi.JsapiApiService{Client: c}
	prepay(t, svc, prepayRequest("CERT_MODE_1", notifyURL, 1))
	res, err := svc.CloseOrder(ctx, jsapi.CloseOrderRequest{OutTradeNo: core.String("CERT_MODE_1"), Mchid: core.String(mchID)})
	if err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := res.Response.Header.Get("Wechatpay-Serial"); got != sim.Keys().PlatformCertSerial {
		t.Errorf("reply serial = %q, want the platform certificate serial", got)
	}
}

func TestWronglySignedRequestIs401SignError(t *testing.T) {
	sim := startSim(t, nil)
	k := sim.Keys()
	cases := map[string]core.ClientOption{
		"other private key": option.WithWechatPayPublicKeyAuthCipher(mchID, merchantSerial, otherKey, k.PublicKeyID, k.PublicKey),
		"unknown serial":    option.WithWechatPayPublicKeyAuthCipher(mchID, "0000000000000000000000000000000000000000", merchantKey, k.PublicKeyID, k.PublicKey),
		"other mchid":       option.WithWechatPayPublicKeyAuthCipher("1900000999", merchantSerial, merchantKey, k.PublicKeyID, k.PublicKey),
	}
	for name, opt := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := core.NewClient(context.Background(), opt, option.WithHTTPClient(sim.HTTPClient()))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = (&jsapi.JsapiApiService{Client: c}).Prepay(ctxTimeout(t), prepayRequest("SIGNED_BAD1", notifyURL, 1))
			var apiErr *core.APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "SIGN_ERROR" {
				t.Fatalf("err = %v, want 401 SIGN_ERROR", err)
			}
		})
	}
	if _, ok := sim.Trade("SIGNED_BAD1"); ok {
		t.Error("a rejected request created a trade")
	}
}

func TestStaleRequestTimestampIsRejected(t *testing.T) {
	// The simulator's clock runs 6 minutes ahead of the merchant's.
	sim := startSim(t, func(o *paysim.Options) { o.Now = func() time.Time { return time.Now().Add(6 * time.Minute) } })
	c, err := core.NewClient(context.Background(), option.WithMerchantCredential(mchID, merchantSerial, merchantKey),
		option.WithoutValidator(), option.WithHTTPClient(sim.HTTPClient()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(ctxTimeout(t), "https://api.mch.weixin.qq.com/v3/certificates")
	if !core.IsAPIError(err, "SIGN_ERROR") {
		t.Fatalf("err = %v, want SIGN_ERROR", err)
	}
}

func TestOutTradeNoWithPipeAndStarIsVerifiedOverTheRawRequestURI(t *testing.T) {
	sim := startSim(t, nil)
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	ctx := ctxTimeout(t)
	const no = "A*2|3-x_y"
	prepay(t, svc, prepayRequest(no, notifyURL, 5))
	tx, _, err := svc.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String(no), Mchid: core.String(mchID)})
	if err != nil {
		t.Fatalf("query %q: %v", no, err)
	}
	if *tx.OutTradeNo != no {
		t.Errorf("out_trade_no = %q, want %q", *tx.OutTradeNo, no)
	}
	if _, err := svc.CloseOrder(ctx, jsapi.CloseOrderRequest{OutTradeNo: core.String(no), Mchid: core.String(mchID)}); err != nil {
		t.Fatalf("close %q: %v", no, err)
	}
}

func TestIdenticalPrepayGetsFreshIDAndChangedParametersAreOutTradeNoUsed(t *testing.T) {
	sim := startSim(t, nil)
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	req := prepayRequest("REENTRY_01", notifyURL, 100)
	req.TimeExpire = core.Time(time.Now().Add(time.Hour).Truncate(time.Second))
	first := prepay(t, svc, req)
	second := prepay(t, svc, req)
	if first == second {
		t.Errorf("identical re-prepay returned the same prepay_id %q, want a fresh one", first)
	}
	changed := req
	changed.Amount = &jsapi.Amount{Total: core.Int64(101)}
	_, _, err := svc.Prepay(ctxTimeout(t), changed)
	var apiErr *core.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || apiErr.Code != "OUT_TRADE_NO_USED" {
		t.Fatalf("changed amount: err = %v, want 403 OUT_TRADE_NO_USED", err)
	}
	ts, _ := sim.Trade("REENTRY_01")
	if diff := cmp.Diff([]string{first, second}, ts.PrepayIDs); diff != "" {
		t.Errorf("prepay ids (-want +got):\n%s", diff)
	}
}

func TestPrepayRejectsInvalidParameters(t *testing.T) {
	sim := startSim(t, nil)
	c := publicKeyClient(t, sim)
	valid := func() map[string]any {
		return map[string]any{
			"appid": appID, "mchid": mchID, "description": "ok", "out_trade_no": "VALID_0001",
			"notify_url": notifyURL, "amount": map[string]any{"total": 1, "currency": "CNY"},
			"payer": map[string]any{"openid": openID},
		}
	}
	cases := []struct {
		name   string
		mutate func(map[string]any)
		status int
		code   string
	}{
		{"other appid", func(m map[string]any) { m["appid"] = "wx0000000000000000" }, 400, "APPID_MCHID_NOT_MATCH"},
		{"other mchid in body", func(m map[string]any) { m["mchid"] = "1900000999" }, 400, "PARAM_ERROR"},
		{"description of 128 characters", func(m map[string]any) { m["description"] = strings.Repeat("好", 128) }, 400, "PARAM_ERROR"},
		{"emoji in description", func(m map[string]any) { m["description"] = "cake 🍰" }, 400, "PARAM_ERROR"},
		{"out_trade_no too short", func(m map[string]any) { m["out_trade_no"] = "A1234" }, 400, "PARAM_ERROR"},
		{"out_trade_no too long", func(m map[string]any) { m["out_trade_no"] = strings.Repeat("a", 33) }, 400, "PARAM_ERROR"},
		{"out_trade_no with a dot", func(m map[string]any) { m["out_trade_no"] = "ORDER.0001" }, 400, "PARAM_ERROR"},
		{"zero total", func(m map[string]any) { m["amount"] = map[string]any{"total": 0} }, 400, "PARAM_ERROR"},
		{"currency USD", func(m map[string]any) { m["amount"] = map[string]any{"total": 1, "currency": "USD"} }, 400, "PARAM_ERROR"},
		{"no openid", func(m map[string]any) { m["payer"] = map[string]any{} }, 400, "PARAM_ERROR"},
		{"no notify_url", func(m map[string]any) { delete(m, "notify_url") }, 400, "PARAM_ERROR"},
		{"notify_url with query", func(m map[string]any) { m["notify_url"] = notifyURL + "?order=1" }, 400, "PARAM_ERROR"},
		{"plain http notify_url off loopback", func(m map[string]any) { m["notify_url"] = "http://merchant.example.com/n" }, 400, "PARAM_ERROR"},
		{"time_expire not RFC 3339", func(m map[string]any) { m["time_expire"] = "20220421191948" }, 400, "PARAM_ERROR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := valid()
			tc.mutate(body)
			_, err := c.Post(ctxTimeout(t), "https://api.mch.weixin.qq.com/v3/pay/transactions/jsapi", body)
			var apiErr *core.APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status || apiErr.Code != tc.code {
				t.Fatalf("err = %v, want %d %s", err, tc.status, tc.code)
			}
		})
	}
	t.Run("http notify_url on loopback is allowed", func(t *testing.T) {
		body := valid()
		body["notify_url"] = "http://127.0.0.1:9/notify"
		if _, err := c.Post(ctxTimeout(t), "https://api.mch.weixin.qq.com/v3/pay/transactions/jsapi", body); err != nil {
			t.Fatal(err)
		}
	})
}

// notifyHandler is the SDK's own notification handler in public-key mode.
func notifyHandler(t testing.TB, sim *paysim.Server) *notify.Handler {
	t.Helper()
	k := sim.Keys()
	h, err := notify.NewRSANotifyHandler(apiV3Key, verifiers.NewSHA256WithRSAPubkeyVerifier(k.PublicKeyID, *k.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func parseWithSDK(h *notify.Handler, rec recorded) (tx payments.Transaction, req *notify.Request, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("SDK panicked")
		}
	}()
	r, _ := http.NewRequest(http.MethodPost, "/pay/notify", bytes.NewReader(rec.body))
	r.Header = rec.header
	req, err = h.ParseNotifyRequest(context.Background(), r, &tx)
	return tx, req, err
}

func TestPayDeliversNotificationTheSDKAcceptsAndDecrypts(t *testing.T) {
	sim := startSim(t, nil)
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	rc := newReceiver(t, func(int, *http.Request, []byte) int { return http.StatusNoContent })
	id := prepay(t, svc, prepayRequest("NOTIFY_0001", rc.url(), 1234))
	ctx := ctxTimeout(t)

	paid, err := sim.Pay(ctx, id, paysim.PayOptions{})
	if err != nil {
		t.Fatalf("Pay: %v", err)
	}
	if len(paid.TransactionID) != 28 {
		t.Errorf("transaction_id %q has %d digits, want 28", paid.TransactionID, len(paid.TransactionID))
	}
	rec := rc.next(t)
	tx, req, err := parseWithSDK(notifyHandler(t, sim), rec)
	if err != nil {
		t.Fatalf("SDK rejected the notification: %v", err)
	}
	if req.EventType != "TRANSACTION.SUCCESS" || req.ID != paid.NotificationID || len(req.ID) != 36 || req.Resource.AssociatedData != "transaction" || len(req.Resource.Nonce) != 12 {
		t.Errorf("envelope = %+v", req)
	}
	if got, want := rec.header.Get("Wechatpay-Serial"), sim.Keys().PublicKeyID; got != want {
		t.Errorf("serial = %q, want the public key id %q", got, want)
	}
	want := map[string]any{
		"appid": appID, "mchid": mchID, "out_trade_no": "NOTIFY_0001", "transaction_id": paid.TransactionID,
		"trade_state": "SUCCESS", "trade_type": "JSAPI", "attach": "cart=42", "openid": openID,
		"total": int64(1234), "payer_total": int64(1234), "currency": "CNY",
	}
	got := map[string]any{
		"appid": *tx.Appid, "mchid": *tx.Mchid, "out_trade_no": *tx.OutTradeNo, "transaction_id": *tx.TransactionId,
		"trade_state": *tx.TradeState, "trade_type": *tx.TradeType, "attach": *tx.Attach, "openid": *tx.Payer.Openid,
		"total": *tx.Amount.Total, "payer_total": *tx.Amount.PayerTotal, "currency": *tx.Amount.Currency,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decrypted transaction (-want +got):\n%s", diff)
	}
	st, err := time.Parse(time.RFC3339, *tx.SuccessTime)
	if err != nil || !strings.HasSuffix(*tx.SuccessTime, "+08:00") || !st.Equal(paid.SuccessTime) {
		t.Errorf("success_time = %q (%v), want RFC 3339 in +08:00 equal to %v", *tx.SuccessTime, err, paid.SuccessTime)
	}
	if err := sim.WaitAcked(ctx, "NOTIFY_0001"); err != nil {
		t.Fatal(err)
	}

	byID, _, err := svc.QueryOrderById(ctx, jsapi.QueryOrderByIdRequest{TransactionId: core.String(paid.TransactionID), Mchid: core.String(mchID)})
	if err != nil || *byID.OutTradeNo != "NOTIFY_0001" || *byID.TradeState != "SUCCESS" {
		t.Fatalf("query by transaction id = %v, %v", byID, err)
	}
}

func TestNotificationSignedWithPlatformCertWhenConfigured(t *testing.T) {
	sim := startSim(t, func(o *paysim.Options) { o.NotifyWithPlatformCert = true })
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	rc := newReceiver(t, func(int, *http.Request, []byte) int { return http.StatusOK })
	id := prepay(t, svc, prepayRequest("CERTNOTE_01", rc.url(), 1))
	if _, err := sim.Pay(ctxTimeout(t), id, paysim.PayOptions{}); err != nil {
		t.Fatal(err)
	}
	rec := rc.next(t)
	if got, want := rec.header.Get("Wechatpay-Serial"), sim.Keys().PlatformCertSerial; got != want {
		t.Fatalf("serial = %q, want the certificate serial %q", got, want)
	}
	// The public-key verifier refuses another serial even with the same key.
	if _, _, err := parseWithSDK(notifyHandler(t, sim), rec); err == nil {
		t.Error("public-key handler accepted a certificate-serial notification")
	}
}

func TestNotificationIsRetriedUntilTheReceiverAnswers2xx(t *testing.T) {
	sim := startSim(t, nil)
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	rc := newReceiver(t, func(n int, _ *http.Request, _ []byte) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	id := prepay(t, svc, prepayRequest("RETRY_0001", rc.url(), 1))
	paid, err := sim.Pay(ctxTimeout(t), id, paysim.PayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.WaitAcked(ctxTimeout(t), "RETRY_0001"); err != nil {
		t.Fatal(err)
	}
	if err := sim.Close(); err != nil { // waits for delivery goroutines: no more attempts after this
		t.Fatal(err)
	}
	var got []int
	for _, d := range sim.Deliveries("RETRY_0001") {
		got = append(got, d.Status)
		if d.NotificationID != paid.NotificationID {
			t.Errorf("attempt %d carries notification %q, want %q", d.Attempt, d.NotificationID, paid.NotificationID)
		}
	}
	if diff := cmp.Diff([]int{500, 500, 200}, got); diff != "" {
		t.Errorf("delivery statuses (-want +got):\n%s", diff)
	}
	// Every attempt must verify on its own (retries are re-signed).
	h := notifyHandler(t, sim)
	for i := range 3 {
		if _, _, err := parseWithSDK(h, rc.next(t)); err != nil {
			t.Errorf("attempt %d: SDK rejected it: %v", i, err)
		}
	}
}

func TestNotificationGivesUpAfterTheScheduleAndCountsTimeoutsAsFailures(t *testing.T) {
	release := make(chan struct{})
	sim := startSim(t, func(o *paysim.Options) {
		o.RetrySchedule = []time.Duration{time.Millisecond}
		o.DeliveryTimeout = 50 * time.Millisecond
	})
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	rc := newReceiver(t, func(n int, r *http.Request, _ []byte) int {
		if n == 1 {
			select { // slower than DeliveryTimeout: counts as a failure
			case <-release:
			case <-r.Context().Done():
			}
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	defer close(release)
	id := prepay(t, svc, prepayRequest("GIVEUP_001", rc.url(), 1))
	if _, err := sim.Pay(ctxTimeout(t), id, paysim.PayOptions{}); err != nil {
		t.Fatal(err)
	}
	err := sim.WaitAcked(ctxTimeout(t), "GIVEUP_001")
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitAcked = %v, want a gave-up error", err)
	}
	ds := sim.Deliveries("GIVEUP_001")
	if len(ds) != 2 || ds[0].Status != 0 || ds[0].Error == "" || ds[1].Status != 503 || ds[0].Acked || ds[1].Acked {
		t.Errorf("deliveries = %+v, want a timeout (status 0) then 503", ds)
	}
}

func TestNoNotifyPaysButDeliversNothing(t *testing.T) {
	sim := startSim(t, nil)
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	rc := newReceiver(t, func(int, *http.Request, []byte) int { return http.StatusOK })
	id := prepay(t, svc, prepayRequest("LOST_00001", rc.url(), 1))
	paid, err := sim.Pay(ctxTimeout(t), id, paysim.PayOptions{NoNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	if paid.NotificationID != "" {
		t.Errorf("NotificationID = %q, want none", paid.NotificationID)
	}
	if ts, _ := sim.Trade("LOST_00001"); ts.TradeState != "SUCCESS" {
		t.Errorf("trade state = %q, want SUCCESS", ts.TradeState)
	}
	if err := sim.Close(); err != nil { // waits for any delivery goroutine
		t.Fatal(err)
	}
	if ds := sim.Deliveries("LOST_00001"); len(ds) != 0 {
		t.Errorf("deliveries = %+v, want none", ds)
	}
	select {
	case r := <-rc.requests:
		t.Errorf("receiver got a notification: %s", r.body)
	default:
	}
}

func TestDuplicatesDeliverIdenticalExtraCopies(t *testing.T) {
	sim := startSim(t, nil)
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	rc := newReceiver(t, func(int, *http.Request, []byte) int { return http.StatusOK })
	id := prepay(t, svc, prepayRequest("DUPS_00001", rc.url(), 1))
	if _, err := sim.Pay(ctxTimeout(t), id, paysim.PayOptions{Duplicates: 2}); err != nil {
		t.Fatal(err)
	}
	first := rc.next(t)
	for range 2 {
		if r := rc.next(t); !bytes.Equal(r.body, first.body) || r.header.Get("Wechatpay-Signature") != first.header.Get("Wechatpay-Signature") {
			t.Error("duplicate differs from the first copy")
		}
	}
	if _, err := sim.WaitDeliveries(ctxTimeout(t), "DUPS_00001", 3); err != nil {
		t.Fatal(err)
	}
}

func TestPaidOrderCannotBeClosedRepaidOrPrepaidAgain(t *testing.T) {
	sim := startSim(t, nil)
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	ctx := ctxTimeout(t)
	req := prepayRequest("PAID_00001", notifyURL, 1)
	id := prepay(t, svc, req)
	if _, err := sim.Pay(ctx, id, paysim.PayOptions{NoNotify: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Pay(ctx, id, paysim.PayOptions{}); !errors.Is(err, paysim.ErrOrderPaid) {
		t.Errorf("second Pay: err = %v, want ErrOrderPaid", err)
	}
	if _, err := svc.CloseOrder(ctx, jsapi.CloseOrderRequest{OutTradeNo: req.OutTradeNo, Mchid: core.String(mchID)}); !core.IsAPIError(err, paysim.CodeOrderPaid) {
		t.Errorf("close of paid order: err = %v, want %s", err, paysim.CodeOrderPaid)
	}
	if _, _, err := svc.Prepay(ctx, req); !core.IsAPIError(err, paysim.CodeOrderPaid) {
		t.Errorf("prepay of paid order: err = %v, want %s", err, paysim.CodeOrderPaid)
	}
	if _, err := sim.Pay(ctx, "wx_unknown", paysim.PayOptions{}); !errors.Is(err, paysim.ErrUnknownPrepay) {
		t.Errorf("unknown prepay: err = %v, want ErrUnknownPrepay", err)
	}
}

func TestPayAfterTimeExpireFails(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	sim := startSim(t, func(o *paysim.Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	req := prepayRequest("EXPIRE_001", notifyURL, 1)
	req.TimeExpire = core.Time(now.Add(10 * time.Minute))
	id := prepay(t, svc, req)
	mu.Lock()
	now = now.Add(11 * time.Minute)
	mu.Unlock()
	if _, err := sim.Pay(ctxTimeout(t), id, paysim.PayOptions{}); !errors.Is(err, paysim.ErrOrderExpired) {
		t.Fatalf("err = %v, want ErrOrderExpired", err)
	}
}

func TestPaidTotalFenSimulatesAPaymentOfAnotherAmount(t *testing.T) {
	sim := startSim(t, nil)
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	rc := newReceiver(t, func(int, *http.Request, []byte) int { return http.StatusOK })
	id := prepay(t, svc, prepayRequest("AMOUNT_001", rc.url(), 1000))
	if _, err := sim.Pay(ctxTimeout(t), id, paysim.PayOptions{PaidTotalFen: 1}); err != nil {
		t.Fatal(err)
	}
	tx, _, err := parseWithSDK(notifyHandler(t, sim), rc.next(t))
	if err != nil {
		t.Fatal(err)
	}
	if *tx.Amount.Total != 1 || *tx.Amount.PayerTotal != 1 {
		t.Errorf("amount = %v, want total and payer_total 1", tx.Amount)
	}
}

func TestBuildNotificationForgeriesFailSDKVerification(t *testing.T) {
	sim := startSim(t, nil)
	h := notifyHandler(t, sim)
	tx := paysim.Transaction{AppID: appID, MchID: mchID, OutTradeNo: "FORGED_001", TradeState: "SUCCESS", Amount: &paysim.Amount{Total: 1}}
	shortNonce := "abcdefghijk"
	cases := map[string]paysim.NotifyOptions{
		"other key":       {SignWith: otherKey},
		"other serial":    {Serial: "PUB_KEY_ID_000000000000000000000000000001"},
		"stale 301s":      {TimestampShift: -301 * time.Second},
		"tampered body":   {TamperBody: func(b []byte) []byte { return bytes.Replace(b, []byte(`"summary":"`), []byte(`"summary":"x`), 1) }},
		"probe":           {SignatureProbe: true},
		"other APIv3 key": {APIv3Key: "ffffffffffffffffffffffffffffffff"},
		"11-char nonce":   {Nonce: shortNonce},
		"no resource":     {OmitResource: true},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			hd, body, err := sim.BuildNotification(tx, o)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := parseWithSDK(h, recorded{header: hd, body: body}); err == nil {
				t.Fatal("SDK accepted a forged notification")
			}
		})
	}
	t.Run("genuine", func(t *testing.T) {
		hd, body, err := sim.BuildNotification(tx, paysim.NotifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := parseWithSDK(h, recorded{header: hd, body: body})
		if err != nil || *got.OutTradeNo != "FORGED_001" {
			t.Fatalf("genuine notification: %v, %v", got, err)
		}
	})
}

func TestFaultKnobs(t *testing.T) {
	sim := startSim(t, nil)
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	ctx := ctxTimeout(t)

	t.Run("FailNext answers the injected status the given number of times", func(t *testing.T) {
		sim.FailNext(2, 429, "FREQUENCY_LIMITED")
		for range 2 {
			_, _, err := svc.Prepay(ctx, prepayRequest("FAULT_0001", notifyURL, 1))
			var apiErr *core.APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "FREQUENCY_LIMITED" {
				t.Fatalf("err = %v, want 429 FREQUENCY_LIMITED", err)
			}
		}
		prepay(t, svc, prepayRequest("FAULT_0001", notifyURL, 1))
	})
	t.Run("a bad reply signature fails SDK validation", func(t *testing.T) {
		sim.SetFaults(paysim.Faults{BadResponseSignature: true})
		defer sim.SetFaults(paysim.Faults{})
		_, _, err := svc.Prepay(ctx, prepayRequest("FAULT_0002", notifyURL, 1))
		var apiErr *core.APIError
		if err == nil || errors.As(err, &apiErr) {
			t.Fatalf("err = %v, want a validation error", err)
		}
	})
	t.Run("a reply delay outlasts a short client timeout", func(t *testing.T) {
		sim.SetFaults(paysim.Faults{ResponseDelay: 2 * time.Second})
		defer sim.SetFaults(paysim.Faults{})
		hc := sim.HTTPClient()
		hc.Timeout = 50 * time.Millisecond
		k := sim.Keys()
		c, err := core.NewClient(ctx, option.WithWechatPayPublicKeyAuthCipher(mchID, merchantSerial, merchantKey, k.PublicKeyID, k.PublicKey), option.WithHTTPClient(hc))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := (&jsapi.JsapiApiService{Client: c}).Prepay(ctx, prepayRequest("FAULT_0003", notifyURL, 1)); err == nil {
			t.Fatal("want a timeout")
		}
	})
	t.Run("notification faults make deliveries fail verification", func(t *testing.T) {
		rc := newReceiver(t, func(int, *http.Request, []byte) int { return http.StatusOK })
		h := notifyHandler(t, sim)
		for name, f := range map[string]paysim.Faults{
			"bad signature": {NotifyBadSignature: true},
			"stale":         {NotifyTimestampShift: -10 * time.Minute},
		} {
			sim.SetFaults(f)
			no := "FAULTN_" + strings.ReplaceAll(name, " ", "_")
			id := prepay(t, svc, prepayRequest(no, rc.url(), 1))
			if _, err := sim.Pay(ctx, id, paysim.PayOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := parseWithSDK(h, rc.next(t)); err == nil {
				t.Errorf("%s: SDK accepted the delivered notification", name)
			}
			if err := sim.WaitAcked(ctx, no); err != nil {
				t.Fatal(err)
			}
		}
		sim.SetFaults(paysim.Faults{})
	})
}

func TestCloseEndsPendingRetries(t *testing.T) {
	sim := startSim(t, func(o *paysim.Options) { o.RetrySchedule = []time.Duration{time.Hour} })
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	rc := newReceiver(t, func(int, *http.Request, []byte) int { return http.StatusInternalServerError })
	id := prepay(t, svc, prepayRequest("CLOSING_01", rc.url(), 1))
	if _, err := sim.Pay(ctxTimeout(t), id, paysim.PayOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.WaitDeliveries(ctxTimeout(t), "CLOSING_01", 1); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sim.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for an hour-long retry")
	}
}

func jscode2session(t *testing.T, sim *paysim.Server, appid, secret, code string) map[string]any {
	t.Helper()
	q := url.Values{"appid": {appid}, "secret": {secret}, "js_code": {code}, "grant_type": {"authorization_code"}}
	resp, err := http.Get(sim.URL() + "/sns/jscode2session?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLoginCodeIsSingleUseAndChecksAppCredentials(t *testing.T) {
	sim := startSim(t, nil)
	code := sim.NewLoginCode(openID)
	if got := jscode2session(t, sim, "wx0000000000000000", appSecret, code)["errcode"]; got != 40013.0 {
		t.Errorf("wrong appid: errcode = %v, want 40013", got)
	}
	if got := jscode2session(t, sim, appID, "wrong", code)["errcode"]; got != 40125.0 {
		t.Errorf("wrong secret: errcode = %v, want 40125", got)
	}
	first := jscode2session(t, sim, appID, appSecret, code)
	if first["openid"] != openID || first["session_key"] == "" || first["errcode"] != nil {
		t.Errorf("first use = %v, want openid and session_key", first)
	}
	if got := jscode2session(t, sim, appID, appSecret, code)["errcode"]; got != 40163.0 {
		t.Errorf("second use: errcode = %v, want 40163", got)
	}
	if got := jscode2session(t, sim, appID, appSecret, "never-issued")["errcode"]; got != 40029.0 {
		t.Errorf("unknown code: errcode = %v, want 40029", got)
	}
}

func TestLoginCodeExpiresAfterFiveMinutes(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	sim := startSim(t, func(o *paysim.Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	code := sim.NewLoginCode(openID)
	mu.Lock()
	now = now.Add(5*time.Minute + time.Second)
	mu.Unlock()
	if got := jscode2session(t, sim, appID, appSecret, code)["errcode"]; got != 40029.0 {
		t.Errorf("expired code: errcode = %v, want 40029", got)
	}
}

func TestControlAPIOverHTTP(t *testing.T) {
	sim := startSim(t, nil)
	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	rc := newReceiver(t, func(int, *http.Request, []byte) int { return http.StatusOK })
	id := prepay(t, svc, prepayRequest("HTTPCTL_01", rc.url(), 321))

	post := func(path, body string) (*http.Response, map[string]any) {
		t.Helper()
		resp, err := http.Post(sim.URL()+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp, m
	}
	get := func(path string, v any) int {
		t.Helper()
		resp, err := http.Get(sim.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(v)
		return resp.StatusCode
	}

	resp, m := post("/sim/login-code", `{"openid":"o_http"}`)
	if resp.StatusCode != 200 || jscode2session(t, sim, appID, appSecret, m["code"].(string))["openid"] != "o_http" {
		t.Errorf("login-code: %d %v", resp.StatusCode, m)
	}
	var before paysim.TradeState
	if st := get("/sim/prepays/"+id, &before); st != 200 || before.OutTradeNo != "HTTPCTL_01" || before.Amount.Total != 321 {
		t.Errorf("prepays: %d %+v", st, before)
	}
	resp, m = post("/sim/pay", `{"prepay_id":"`+id+`","duplicates":1}`)
	if resp.StatusCode != 200 || m["out_trade_no"] != "HTTPCTL_01" {
		t.Fatalf("pay: %d %v", resp.StatusCode, m)
	}
	if resp, _ := post("/sim/pay", `{"prepay_id":"`+id+`"}`); resp.StatusCode != http.StatusConflict {
		t.Errorf("second pay: status %d, want 409", resp.StatusCode)
	}
	if _, err := sim.WaitDeliveries(ctxTimeout(t), "HTTPCTL_01", 2); err != nil {
		t.Fatal(err)
	}
	var ds []paysim.Delivery
	if st := get("/sim/deliveries?out_trade_no=HTTPCTL_01", &ds); st != 200 || len(ds) != 2 || !ds[0].Acked {
		t.Errorf("deliveries: %d %+v", st, ds)
	}
	var ts paysim.TradeState
	if st := get("/sim/trades/HTTPCTL_01", &ts); st != 200 || ts.TradeState != "SUCCESS" || ts.TransactionID != m["transaction_id"] {
		t.Errorf("trades: %d %+v", st, ts)
	}
	if resp, _ := post("/sim/faults", `{"fail_next":{"count":1,"status":500,"code":"SYSTEM_ERROR"}}`); resp.StatusCode != 204 {
		t.Fatalf("faults: %d", resp.StatusCode)
	}
	if _, _, err := svc.Prepay(ctxTimeout(t), prepayRequest("HTTPCTL_02", rc.url(), 1)); !core.IsAPIError(err, "SYSTEM_ERROR") {
		t.Errorf("after fail_next: err = %v, want SYSTEM_ERROR", err)
	}
}

func TestNewRejectsIncompleteOptions(t *testing.T) {
	testKeys(t)
	_, err := paysim.New(paysim.Options{MchID: mchID, APIv3Key: "short"})
	if err == nil {
		t.Fatal("New accepted options without AppID, AppSecret, merchant key and a 32-byte APIv3 key")
	}
	for _, want := range []string{"AppID", "AppSecret", "APIv3Key", "MerchantSerial", "MerchantPublicKey"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestKeysLoadWithTheSDKAndMatchTheServedCertificate(t *testing.T) {
	sim := startSim(t, nil)
	k := sim.Keys()
	priv, err := utils.LoadPrivateKey(k.PlatformPrivateKeyPEM)
	if err != nil || !priv.Equal(platformKey) {
		t.Errorf("PlatformPrivateKeyPEM: %v", err)
	}
	pub, err := utils.LoadPublicKey(k.PublicKeyPEM)
	if err != nil || !pub.Equal(&platformKey.PublicKey) {
		t.Errorf("PublicKeyPEM: %v", err)
	}
	cert, err := utils.LoadCertificate(k.PlatformCertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if got := utils.GetCertificateSerialNumber(*cert); got != k.PlatformCertSerial || len(got) != 40 || strings.ToUpper(got) != got {
		t.Errorf("certificate serial %q, Keys says %q; want 40 uppercase hex", got, k.PlatformCertSerial)
	}
	if !strings.HasPrefix(k.PublicKeyID, "PUB_KEY_ID_") || len(k.PublicKeyID) != len("PUB_KEY_ID_")+30 {
		t.Errorf("PublicKeyID = %q", k.PublicKeyID)
	}
}

func TestControlAPIMakesDisagreementsOnRequest(t *testing.T) {
	sim := startSim(t, nil)
	client := publicKeyClient(t, sim)
	svc := jsapi.JsapiApiService{Client: client}
	refunds := refunddomestic.RefundsApiService{Client: client}
	rc := newReceiver(t, func(int, *http.Request, []byte) int { return http.StatusOK })
	ctx := ctxTimeout(t)
	post := func(path, body string) int {
		t.Helper()
		resp, err := http.Post(sim.URL()+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// A trade closed at WeChat Pay behind the merchant's back.
	prepay(t, svc, prepayRequest("SILENT_001", rc.url(), 100))
	if st := post("/sim/trades/SILENT_001/close", ""); st != http.StatusNoContent {
		t.Fatalf("close: status %d, want 204", st)
	}
	if ts, _ := sim.Trade("SILENT_001"); ts.TradeState != "CLOSED" {
		t.Errorf("trade state = %q, want CLOSED", ts.TradeState)
	}
	if st := post("/sim/trades/SILENT_001/close", ""); st != http.StatusConflict {
		t.Errorf("closing a closed trade: status %d, want 409", st)
	}
	if st := post("/sim/trades/NO_SUCH_TRADE/close", ""); st != http.StatusNotFound {
		t.Errorf("closing an unknown trade: status %d, want 404", st)
	}

	// A refund held in flight, then settled ABNORMAL without a notification.
	id := prepay(t, svc, prepayRequest("REFUNDME_1", rc.url(), 500))
	if _, err := sim.Pay(ctx, id, paysim.PayOptions{NoNotify: true}); err != nil {
		t.Fatal(err)
	}
	if st := post("/sim/refund-behaviour", `{"outcome":"LOST"}`); st != http.StatusBadRequest {
		t.Errorf("unknown outcome: status %d, want 400", st)
	}
	if st := post("/sim/refund-behaviour", `{"hold":true}`); st != http.StatusNoContent {
		t.Fatalf("refund-behaviour: status %d, want 204", st)
	}
	_, _, err := refunds.Create(ctx, refunddomestic.CreateRequest{
		OutTradeNo:  core.String("REFUNDME_1"),
		OutRefundNo: core.String("R_REFUNDME_1"),
		NotifyUrl:   core.String(rc.url()),
		Amount:      &refunddomestic.AmountReq{Refund: core.Int64(200), Total: core.Int64(500), Currency: core.String("CNY")},
	})
	if err != nil {
		t.Fatalf("refund: %v", err)
	}
	if status, _, _ := sim.RefundState("R_REFUNDME_1"); status != paysim.RefundProcessing {
		t.Fatalf("held refund is %q, want PROCESSING", status)
	}
	if st := post("/sim/refunds/R_REFUNDME_1/settle", `{"outcome":"ABNORMAL"}`); st != http.StatusNoContent {
		t.Fatalf("settle: status %d, want 204", st)
	}
	got, _, err := refunds.QueryByOutRefundNo(ctx, refunddomestic.QueryByOutRefundNoRequest{OutRefundNo: core.String("R_REFUNDME_1")})
	if err != nil || got.Status == nil || *got.Status != refunddomestic.STATUS_ABNORMAL {
		t.Errorf("queried refund = %v, %v; want ABNORMAL", got, err)
	}
	if st := post("/sim/refunds/R_REFUNDME_1/settle", `{"outcome":"SUCCESS"}`); st != http.StatusConflict {
		t.Errorf("settling a settled refund: status %d, want 409", st)
	}
	if ds := sim.Deliveries("R_REFUNDME_1"); len(ds) != 0 {
		t.Errorf("refund deliveries = %+v, want none (notify was false)", ds)
	}
}

func TestExtraAppIDsArePaidUnderTheirOwnAppIDAndOthersRefused(t *testing.T) {
	const extra, unbound = "wx0123456789abcdef", "wx0000000000000000"
	sim := startSim(t, func(o *paysim.Options) { o.ExtraAppIDs = []string{extra} })
	if got := sim.Keys().ExtraAppIDs; !slices.Equal(got, []string{extra}) {
		t.Errorf("Keys().ExtraAppIDs = %v, want [%s]", got, extra)
	}
	c := publicKeyClient(t, sim)
	svc := jsapi.JsapiApiService{Client: c}
	rc := newReceiver(t, func(int, *http.Request, []byte) int { return http.StatusNoContent })
	ctx := ctxTimeout(t)

	req := prepayRequest("EXTRA_0001", rc.url(), 500)
	req.Appid = core.String(extra)
	id := prepay(t, svc, req)
	if ts, _ := sim.Trade("EXTRA_0001"); ts.AppID != extra {
		t.Errorf("trade appid = %q, want %q", ts.AppID, extra)
	}
	// Re-entry under the default appid changes a parameter.
	if _, _, err := svc.Prepay(ctx, prepayRequest("EXTRA_0001", rc.url(), 500)); !core.IsAPIError(err, paysim.CodeOutTradeNoUse) {
		t.Errorf("same out_trade_no under the default appid: err = %v, want %s", err, paysim.CodeOutTradeNoUse)
	}

	q := func() string {
		t.Helper()
		tx, _, err := svc.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("EXTRA_0001"), Mchid: core.String(mchID)})
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		return *tx.Appid
	}
	if got := q(); got != extra {
		t.Errorf("NOTPAY query appid = %q, want %q", got, extra)
	}
	if _, err := sim.Pay(ctx, id, paysim.PayOptions{}); err != nil {
		t.Fatal(err)
	}
	tx, _, err := parseWithSDK(notifyHandler(t, sim), rc.next(t))
	if err != nil {
		t.Fatalf("SDK rejected the notification: %v", err)
	}
	if *tx.Appid != extra {
		t.Errorf("notified appid = %q, want %q", *tx.Appid, extra)
	}
	if got := q(); got != extra {
		t.Errorf("SUCCESS query appid = %q, want %q", got, extra)
	}

	raw := map[string]any{
		"appid": unbound, "mchid": mchID, "description": "ok", "out_trade_no": "UNBOUND_01",
		"notify_url": notifyURL, "amount": map[string]any{"total": 1, "currency": "CNY"},
		"payer": map[string]any{"openid": openID},
	}
	_, err = c.Post(ctx, "https://api.mch.weixin.qq.com/v3/pay/transactions/jsapi", raw)
	var apiErr *core.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "APPID_MCHID_NOT_MATCH" {
		t.Errorf("unbound appid: err = %v, want 400 APPID_MCHID_NOT_MATCH", err)
	}
	if _, ok := sim.Trade("UNBOUND_01"); ok {
		t.Error("a trade was created under an unbound appid")
	}

	code := sim.NewLoginCode(openID)
	if got := jscode2session(t, sim, unbound, appSecret, code)["errcode"]; got != 40013.0 {
		t.Errorf("unbound appid login: errcode = %v, want 40013", got)
	}
	if got := jscode2session(t, sim, extra, appSecret, code); got["openid"] != openID {
		t.Errorf("extra appid login = %v, want openid %s", got, openID)
	}
}

func TestNewRejectsRepeatedExtraAppIDs(t *testing.T) {
	testKeys(t)
	for _, extras := range [][]string{{appID}, {"wx0123456789abcdef", "wx0123456789abcdef"}, {""}} {
		_, err := paysim.New(paysim.Options{
			MchID: mchID, AppID: appID, AppSecret: appSecret, APIv3Key: apiV3Key, ExtraAppIDs: extras,
			MerchantSerial: merchantSerial, MerchantPublicKey: &merchantKey.PublicKey, PlatformKey: platformKey,
		})
		if err == nil || !strings.Contains(err.Error(), "ExtraAppIDs") {
			t.Errorf("ExtraAppIDs %q: err = %v, want one naming ExtraAppIDs", extras, err)
		}
	}
}
