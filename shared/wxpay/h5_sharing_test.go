package wxpay_test

import (
	"net/url"
	"testing"

	"github.com/payfn/payfn/shared/paysim"
)

// An H5 prepay of a split order asks WeChat Pay to freeze the payment for
// profit sharing (settle_info.profit_sharing), as a JSAPI one does; one
// without the flag is settled to the merchant at once.
func TestH5PrepayAsksForProfitSharingOnlyWhenTheOrderIsSplit(t *testing.T) {
	sim := startSim(t, nil)
	ch := newChannel(t, config(sim, "https://merchant.example.com/notify"))
	h5 := ch.H5()
	ctx := ctxTimeout(t)
	for _, c := range []struct {
		no    string
		split bool
		want  int64
	}{{"H5SPLIT_01", true, 1800}, {"H5PLAIN_01", false, 0}} {
		req := h5Order(c.no, 1800)
		req.ProfitSharing = c.split
		p, err := h5.Prepay(ctx, req)
		if err != nil {
			t.Fatalf("%s: Prepay: %v", c.no, err)
		}
		u, err := url.Parse(p.Payment.H5URL)
		if err != nil {
			t.Fatal(err)
		}
		paid, err := sim.Pay(ctx, u.Query().Get("prepay_id"), paysim.PayOptions{NoNotify: true})
		if err != nil {
			t.Fatalf("%s: pay: %v", c.no, err)
		}
		if v := sim.Sharing(paid.TransactionID); v.PaidFen != 1800 || v.UnsplitFen != c.want {
			t.Errorf("%s (profit_sharing %v): paid %d, unsplit %d; want 1800, %d", c.no, c.split, v.PaidFen, v.UnsplitFen, c.want)
		}
		// WeChat Pay refuses to split an order prepaid without the flag.
		got, err := ch.UnsplitAmount(ctx, paid.TransactionID)
		if c.split && (err != nil || got != c.want) || !c.split && err == nil {
			t.Errorf("%s: UnsplitAmount = %d, %v; want %d (or a refusal without profit_sharing)", c.no, got, err, c.want)
		}
	}
}
