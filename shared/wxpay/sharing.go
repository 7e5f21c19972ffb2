package wxpay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/cipher"
	"github.com/wechatpay-apiv3/wechatpay-go/core/cipher/decryptors"
	"github.com/wechatpay-apiv3/wechatpay-go/core/cipher/encryptors"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/profitsharing"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
)

// Profit sharing (分账) on wechatpay-go's services/profitsharing: the
// channel implements app.ProfitSharer. Receivers' names are sensitive
// fields: the SDK encrypts them (RSA-OAEP) with the WeChat Pay public key,
// or the platform certificate in certificate mode, so these calls use a
// client of their own that carries that cipher; every other call stays on
// the channel's client.

var _ app.ProfitSharer = (*Channel)(nil)

// sharingClients holds each channel's profit-sharing client, made on first
// use (beside the Channel so this file stays self-contained).
var sharingClients sync.Map // *Channel -> *sharingClient

type sharingClient struct {
	once   sync.Once
	client *core.Client
	err    error
}

// sharing returns the channel's profit-sharing client.
func (c *Channel) sharing(ctx context.Context) (*core.Client, error) {
	if err := c.ready(ctx); err != nil {
		return nil, err
	}
	v, _ := sharingClients.LoadOrStore(c, &sharingClient{})
	sc := v.(*sharingClient)
	sc.once.Do(func() {
		var rt http.RoundTripper = c.transport
		if c.cfg.BaseURL != "" {
			to, _ := url.Parse(c.cfg.BaseURL) // validated by New
			rt = rewriteTransport{to: to, base: c.transport}
		}
		var enc cipher.Encryptor
		if c.cfg.PublicKeyID != "" {
			enc = encryptors.NewWechatPayPubKeyEncryptor(c.cfg.PublicKeyID, *c.cfg.PublicKey)
		} else {
			enc = encryptors.NewWechatPayEncryptor(c.certs)
		}
		sc.client, sc.err = core.NewClient(context.Background(),
			option.WithMerchantCredential(c.cfg.MchID, c.cfg.MchCertSerial, c.cfg.MchPrivateKey),
			option.WithVerifier(c.verifier),
			option.WithHTTPClient(&http.Client{Timeout: c.cfg.Timeout, Transport: rt}),
			option.WithWechatPayCipher(enc, decryptors.NewWechatPayDecryptor(c.cfg.MchPrivateKey)))
	})
	if sc.err != nil {
		return nil, fmt.Errorf("wxpay profit-sharing client: %w", sc.err)
	}
	return sc.client, nil
}

// AddReceiver adds a receiver to the merchant's relations (POST
// /v3/profitsharing/receivers/add). Adding one already there succeeds.
func (c *Channel) AddReceiver(ctx context.Context, appID string, r order.Receiver) error {
	op := "add receiver " + string(r.Type)
	id, err := c.appID(appID)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	cl, err := c.sharing(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req := profitsharing.AddReceiverRequest{
		Appid: core.String(id), Type: profitsharing.ReceiverType(r.Type).Ptr(), Account: core.String(r.Account),
		RelationType: profitsharing.ReceiverRelationType(r.RelationType).Ptr(),
	}
	if r.Name != "" {
		req.Name = core.String(r.Name)
	}
	if r.CustomRelation != "" {
		req.CustomRelation = core.String(r.CustomRelation)
	}
	if _, _, err := (&profitsharing.ReceiversApiService{Client: cl}).AddReceiver(ctx, req); err != nil {
		return classify(op, err)
	}
	return nil
}

// CreateSplit asks WeChat Pay to split a payment (POST
// /v3/profitsharing/orders). The same out_order_no splits once.
func (c *Channel) CreateSplit(ctx context.Context, req app.SplitRequest) (app.SplitResult, error) {
	op := "split " + req.OutOrderNo
	if req.TransactionID == "" || req.OutOrderNo == "" || len(req.Shares) == 0 || len(req.Shares) > order.MaxSplitReceivers {
		return app.SplitResult{}, fmt.Errorf("%s: transaction id, out_order_no and 1-%d shares are required", op, order.MaxSplitReceivers)
	}
	id, err := c.appID(req.AppID)
	if err != nil {
		return app.SplitResult{}, fmt.Errorf("%s: %w", op, err)
	}
	cl, err := c.sharing(ctx)
	if err != nil {
		return app.SplitResult{}, fmt.Errorf("%s: %w", op, err)
	}
	rs := make([]profitsharing.CreateOrderReceiver, len(req.Shares))
	for i, s := range req.Shares {
		rs[i] = profitsharing.CreateOrderReceiver{
			Type: core.String(string(s.Receiver.Type)), Account: core.String(s.Receiver.Account),
			Amount: core.Int64(s.AmountFen), Description: core.String(cmp.Or(s.Receiver.Description, "分账")),
		}
	}
	resp, _, err := (&profitsharing.OrdersApiService{Client: cl}).CreateOrder(ctx, profitsharing.CreateOrderRequest{
		Appid: core.String(id), TransactionId: core.String(req.TransactionID), OutOrderNo: core.String(req.OutOrderNo),
		Receivers: rs, UnfreezeUnsplit: core.Bool(req.UnfreezeUnsplit),
	})
	if err != nil {
		return app.SplitResult{}, classify(op, err)
	}
	return toSplitResult(resp), nil
}

// QuerySplit asks for a split or an unfreeze (GET
// /v3/profitsharing/orders/{out_order_no}).
func (c *Channel) QuerySplit(ctx context.Context, transactionID, outOrderNo string) (app.SplitResult, error) {
	op := "query split " + outOrderNo
	if transactionID == "" || outOrderNo == "" {
		return app.SplitResult{}, errors.New("query split: transaction id and out_order_no are required")
	}
	cl, err := c.sharing(ctx)
	if err != nil {
		return app.SplitResult{}, fmt.Errorf("%s: %w", op, err)
	}
	resp, _, err := (&profitsharing.OrdersApiService{Client: cl}).QueryOrder(ctx, profitsharing.QueryOrderRequest{
		TransactionId: core.String(transactionID), OutOrderNo: core.String(outOrderNo)})
	if err != nil {
		return app.SplitResult{}, classify(op, err)
	}
	return toSplitResult(resp), nil
}

// UnfreezeSplit releases what is left of a payment to the merchant (POST
// /v3/profitsharing/orders/unfreeze).
func (c *Channel) UnfreezeSplit(ctx context.Context, transactionID, outOrderNo, description string) (app.SplitResult, error) {
	op := "unfreeze " + outOrderNo
	cl, err := c.sharing(ctx)
	if err != nil {
		return app.SplitResult{}, fmt.Errorf("%s: %w", op, err)
	}
	resp, _, err := (&profitsharing.OrdersApiService{Client: cl}).UnfreezeOrder(ctx, profitsharing.UnfreezeOrderRequest{
		TransactionId: core.String(transactionID), OutOrderNo: core.String(outOrderNo), Description: core.String(cmp.Or(description, "解冻剩余资金"))})
	if err != nil {
		return app.SplitResult{}, classify(op, err)
	}
	return toSplitResult(resp), nil
}

// UnsplitAmount is what is left to split of a payment (GET
// /v3/profitsharing/transactions/{transaction_id}/amounts).
func (c *Channel) UnsplitAmount(ctx context.Context, transactionID string) (int64, error) {
	op := "unsplit amount of " + transactionID
	cl, err := c.sharing(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	resp, _, err := (&profitsharing.TransactionsApiService{Client: cl}).QueryOrderAmount(ctx, profitsharing.QueryOrderAmountRequest{TransactionId: core.String(transactionID)})
	if err != nil {
		return 0, classify(op, err)
	}
	if resp.UnsplitAmount == nil {
		return 0, fmt.Errorf("%s: %w: reply without unsplit_amount", op, app.ErrChannelUnavailable)
	}
	return *resp.UnsplitAmount, nil
}

// CreateReturn takes part of a merchant receiver's share back (POST
// /v3/profitsharing/return-orders). The same out_return_no returns once.
func (c *Channel) CreateReturn(ctx context.Context, req app.ReturnRequest) (app.ReturnResult, error) {
	op := "return " + req.OutReturnNo
	if req.OutOrderNo == "" || req.OutReturnNo == "" || req.ReturnMchID == "" || req.AmountFen < 1 {
		return app.ReturnResult{}, fmt.Errorf("%s: out_order_no, out_return_no, return mchid and a positive amount are required", op)
	}
	cl, err := c.sharing(ctx)
	if err != nil {
		return app.ReturnResult{}, fmt.Errorf("%s: %w", op, err)
	}
	resp, _, err := (&profitsharing.ReturnOrdersApiService{Client: cl}).CreateReturnOrder(ctx, profitsharing.CreateReturnOrderRequest{
		OutOrderNo: core.String(req.OutOrderNo), OutReturnNo: core.String(req.OutReturnNo), ReturnMchid: core.String(req.ReturnMchID),
		Amount: core.Int64(req.AmountFen), Description: core.String(cmp.Or(req.Description, "分账回退"))})
	if err != nil {
		return app.ReturnResult{}, classify(op, err)
	}
	return toReturnResult(resp), nil
}

// QueryReturn asks for a return (GET
// /v3/profitsharing/return-orders/{out_return_no}).
func (c *Channel) QueryReturn(ctx context.Context, outOrderNo, outReturnNo string) (app.ReturnResult, error) {
	op := "query return " + outReturnNo
	cl, err := c.sharing(ctx)
	if err != nil {
		return app.ReturnResult{}, fmt.Errorf("%s: %w", op, err)
	}
	resp, _, err := (&profitsharing.ReturnOrdersApiService{Client: cl}).QueryReturnOrder(ctx, profitsharing.QueryReturnOrderRequest{
		OutOrderNo: core.String(outOrderNo), OutReturnNo: core.String(outReturnNo)})
	if err != nil {
		return app.ReturnResult{}, classify(op, err)
	}
	return toReturnResult(resp), nil
}

func toSplitResult(r *profitsharing.OrdersEntity) app.SplitResult {
	res := app.SplitResult{OrderID: str(r.OrderId), OutOrderNo: str(r.OutOrderNo), TransactionID: str(r.TransactionId)}
	if r.State != nil {
		res.State = string(*r.State)
	}
	for _, d := range r.Receivers {
		sr := order.ShareResult{Account: str(d.Account), AmountFen: i64(d.Amount), DetailID: str(d.DetailId)}
		if d.Type != nil {
			sr.Type = order.ReceiverType(*d.Type)
		}
		if d.Result != nil {
			sr.Result = string(*d.Result)
		}
		if d.FailReason != nil {
			sr.FailReason = string(*d.FailReason)
		}
		res.Results = append(res.Results, sr)
	}
	return res
}

func toReturnResult(r *profitsharing.ReturnOrdersEntity) app.ReturnResult {
	res := app.ReturnResult{ReturnID: str(r.ReturnId), OutReturnNo: str(r.OutReturnNo), AmountFen: i64(r.Amount)}
	if r.Result != nil {
		res.Result = string(*r.Result)
	}
	if r.FailReason != nil {
		res.FailReason = string(*r.FailReason)
	}
	return res
}
