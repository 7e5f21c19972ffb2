package order

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func TestPlanSplitIntegerAndLimits(t *testing.T) {
	rule := Split{Receivers: []Receiver{
		{Type: ReceiverMerchant, Account: "1900000300", Name: "n", RelationType: "BRAND", ShareBP: 2000},
		{Type: ReceiverPersonal, Account: "o-1", RelationType: "USER", FixedFen: 500},
		{Type: ReceiverPersonal, Account: "o-2", RelationType: "USER", ShareBP: 1},
	}}
	if err := rule.Validate(DefaultMaxSplitBP); err != nil {
		t.Fatal(err)
	}
	shares, err := PlanSplit(rule, 9999, 9999, DefaultMaxSplitBP)
	if err != nil {
		t.Fatal(err)
	}
	// floor(9999 × 2000 / 10000) = 1999; 500 fixed; floor(9999 × 1 / 10000) = 0: left out.
	if len(shares) != 2 || shares[0].AmountFen != 1999 || shares[1].AmountFen != 500 {
		t.Fatalf("shares %+v", shares)
	}
	// 800 + 500 of 4000 is 1300 > floor(4000 × 30 %) = 1200: refused.
	var p *SplitProblem
	if _, err := PlanSplit(rule, 4000, 4000, DefaultMaxSplitBP); !errors.As(err, &p) || !p.Over {
		t.Fatalf("over the ratio: %v", err)
	}
	// Within the ratio but over what is left after a refund: refused.
	if _, err := PlanSplit(rule, 10000, 2000, DefaultMaxSplitBP); !errors.As(err, &p) || !p.Over {
		t.Fatalf("over what is left: %v", err)
	}
	over := Split{Receivers: []Receiver{{Type: ReceiverPersonal, Account: "o", RelationType: "USER", ShareBP: 3001}}}
	if err := over.Validate(DefaultMaxSplitBP); !errors.As(err, &p) || !p.Over {
		t.Fatalf("3001 bp: %v", err)
	}
	many := Split{}
	for i := range MaxSplitReceivers + 1 {
		many.Receivers = append(many.Receivers, Receiver{Type: ReceiverPersonal, Account: string(rune('a'+i%26)) + string(rune('a'+i/26)), RelationType: "USER", FixedFen: 1})
	}
	if err := many.Validate(DefaultMaxSplitBP); err == nil {
		t.Fatal("51 receivers accepted")
	}
}

// The returns of an order's refunds, in any split of the refunded total,
// add up to floor(share × refunded / paid): exactly the share once all of
// it is refunded, never more.
func TestReturnAmountsAddUp(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		paid := 1 + r.Int64N(MaxTotalFen)
		share := 1 + r.Int64N(paid*DefaultMaxSplitBP/BasisPoints+1)
		var refunded, returned int64
		for refunded < paid {
			refund := 1 + r.Int64N(paid-refunded)
			returned += ReturnAmount(share, paid, refunded, refund)
			refunded += refund
			if want := share * refunded / paid; returned != want {
				t.Fatalf("paid %d share %d: returned %d after %d refunded, want %d", paid, share, returned, refunded, want)
			}
		}
		if returned != share {
			t.Fatalf("paid %d share %d: returned %d in all", paid, share, returned)
		}
	}
}

func TestReturnNoFitsWeChat(t *testing.T) {
	no := ReturnNo("R"+string(make([]byte, 63)), "1900000300")
	if len(no) > 64 || ReturnNo("a", "b") != ReturnNo("a", "b") || ReturnNo("a", "b") == ReturnNo("a", "c") {
		t.Fatalf("ReturnNo %q", no)
	}
	if len(SplitOrderNo("PF20260101000000ABCDEFGHJKMN")) > 64 {
		t.Fatal("out_order_no too long")
	}
}
