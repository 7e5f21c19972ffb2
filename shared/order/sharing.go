package order

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// Profit sharing (分账): a product may carry a split rule; an order copies
// it when it is created (Order.Split), so a later change of the rule never
// alters an order already made. After the order is PAID (and the rule's
// hold), the shareProfits job splits it once at WeChat Pay: each receiver
// gets its share, and the rest is unfrozen to the merchant.
//
// WeChat Pay's limits for an ordinary (直连) merchant, encoded below. The
// sources, read 2025 (docs and pages corpora):
//   - 请求分账 /v3/profitsharing/orders,
//     https://pay.weixin.qq.com/docs/merchant/products/profit-sharing/apilist.html:
//     "对同一笔订单最多能发起50次分账请求,每次请求最多分给50个接收方";
//     amount "单位为分,只能为整数,不能超过原订单支付金额及最大分账比例金额";
//     out_order_no "只能是数字、大小写字母_-|*@", at most 64 characters;
//     description at most 80 characters.
//   - The maximum ratio is set by the merchant in its portal (产品中心-分账-
//     分账管理比例); ordinary merchants start at 30 % and WeChat Pay refuses
//     more with INVALID_REQUEST "分账金额超出最大分账比例":
//     https://developers.weixin.qq.com/community/develop/doc/0008003fc683f8229193489f961400
//     ("一般最大不超过30%") and the official FAQ
//     https://developers.weixin.qq.com/community/pay/doc/000284823e8460aada68dacca5b008
//     (Q4). payfn assumes 30 % unless the deployment says otherwise.
//   - Same FAQ, Q10: "请在订单支付成功1分钟后再调用分账接口"; Q2: "普通商户分账
//     订单默认冻结期是30天" (after that WeChat Pay unfreezes the money to the
//     merchant and nothing can be split).
//   - 请求分账回退 /v3/profitsharing/return-orders,
//     https://pay.weixin.qq.com/docs/partner/apis/profit-sharing/return-orders/create-return-order.html:
//     only MERCHANT_ID receivers whose result is SUCCESS on a FINISHED split,
//     never a personal receiver; at most 50 returns per split; "分账回退的时限
//     是180天"; a return is answered at once (synchronous), PROCESSING,
//     SUCCESS or FAILED.
//   - The remaining unsplit amount: GET
//     /v3/profitsharing/transactions/{transaction_id}/amounts (unsplit_amount).
const (
	// MaxSplitReceivers is the most receivers one split request may name.
	MaxSplitReceivers = 50
	// BasisPoints is 100 %: a share in basis points is of the amount paid.
	BasisPoints = 10_000
	// DefaultMaxSplitBP is the part of a payment an ordinary merchant may
	// split off, 30 %, unless it raised it in the merchant portal.
	DefaultMaxSplitBP = 3_000
	// MinShareFen is the least amount a receiver can be sent: one fen.
	MinShareFen = 1
	// MinSplitDelay is how long after payment WeChat Pay accepts a split.
	MinSplitDelay = time.Minute
	// SplitFreezeWindow is how long WeChat Pay keeps an ordinary
	// merchant's split order frozen: a split must be made within it.
	SplitFreezeWindow = 30 * 24 * time.Hour
	// MaxSplitHold bounds a rule's hold, leaving the job days of the freeze
	// window to split (and retry) before WeChat Pay unfreezes everything.
	MaxSplitHold = 20 * 24 * time.Hour
	// ReturnWindow is how long after a split its shares can be returned.
	ReturnWindow = 180 * 24 * time.Hour
	// MaxReturnsPerSplit is the most return orders one split may have.
	MaxReturnsPerSplit = 50
	// maxAccount, maxName, maxCustomRelation, maxShareDescription are
	// WeChat Pay's field lengths (characters).
	maxAccount          = 64
	maxName             = 256 // WeChat allows 1024 bytes of ciphertext; a name is short
	maxCustomRelation   = 10
	maxShareDescription = 80
)

// ReceiverType is who receives a share.
type ReceiverType string

// Receiver types payfn supports (a direct merchant has no sub-openids).
const (
	ReceiverMerchant ReceiverType = "MERCHANT_ID"     // a WeChat Pay merchant id
	ReceiverPersonal ReceiverType = "PERSONAL_OPENID" // a user's openid under the merchant's appid
)

// RelationCustom is the relation type that needs a CustomRelation.
const RelationCustom = "CUSTOM"

// relationTypes is WeChat Pay's ReceiverRelationType enumeration.
var relationTypes = []string{"SERVICE_PROVIDER", "STORE", "STAFF", "STORE_OWNER", "PARTNER", "HEADQUARTER",
	"BRAND", "DISTRIBUTOR", "USER", "SUPPLIER", RelationCustom}

// Receiver is one party of a split rule and its share: ShareBP basis
// points of the amount paid, or FixedFen fen (exactly one of the two).
type Receiver struct {
	Type           ReceiverType `bson:"type" json:"type"`
	Account        string       `bson:"account" json:"account"`
	Name           string       `bson:"name,omitempty" json:"name,omitempty"` // merchant's full name, or the person's real name (checked by WeChat Pay); sent encrypted
	RelationType   string       `bson:"relation_type" json:"relation_type"`
	CustomRelation string       `bson:"custom_relation,omitempty" json:"custom_relation,omitempty"`
	ShareBP        int64        `bson:"share_bp,omitempty" json:"share_bp,omitempty"`
	FixedFen       int64        `bson:"fixed_fen,omitempty" json:"fixed_fen,omitempty"`
	Description    string       `bson:"description,omitempty" json:"description,omitempty"` // shown in WeChat Pay's split bill; default "分账"
}

// Split is a split rule: its receivers and how long after payment to wait
// before splitting (a return window of the merchant's own, say).
type Split struct {
	Receivers   []Receiver `bson:"receivers" json:"receivers"`
	HoldSeconds int64      `bson:"hold_seconds,omitempty" json:"hold_seconds,omitempty"`
}

// Hold is the rule's wait after payment.
func (s Split) Hold() time.Duration { return time.Duration(s.HoldSeconds) * time.Second }

// SplitProblem says what is wrong with a split rule: Over is set when the
// rule asks for more than the merchant may split off.
type SplitProblem struct {
	Over    bool
	Message string
}

func (p *SplitProblem) Error() string { return p.Message }

func splitProblem(format string, args ...any) *SplitProblem {
	return &SplitProblem{Message: fmt.Sprintf(format, args...)}
}

// Validate checks a rule against WeChat Pay's limits, maxBP being the
// merchant's maximum split ratio in basis points. The shares in basis
// points must add up to at most maxBP; fixed shares can only be checked
// against an amount (Plan does). It returns a *SplitProblem.
func (s Split) Validate(maxBP int64) error {
	if len(s.Receivers) == 0 {
		return splitProblem("split.receivers: at least one receiver")
	}
	if len(s.Receivers) > MaxSplitReceivers {
		return splitProblem("split.receivers: at most %d receivers", MaxSplitReceivers)
	}
	if s.HoldSeconds < 0 || s.Hold() > MaxSplitHold {
		return splitProblem("split.hold_seconds: from 0 to %d (%s)", int64(MaxSplitHold/time.Second), MaxSplitHold)
	}
	var bp int64
	seen := map[string]bool{}
	for i, r := range s.Receivers {
		at := fmt.Sprintf("split.receivers[%d]", i)
		switch {
		case r.Type != ReceiverMerchant && r.Type != ReceiverPersonal:
			return splitProblem("%s.type: MERCHANT_ID or PERSONAL_OPENID", at)
		case r.Account == "" || len(r.Account) > maxAccount || !printableASCII(r.Account):
			return splitProblem("%s.account: 1-%d printable ASCII characters", at, maxAccount)
		case r.Type == ReceiverMerchant && !digits(r.Account):
			return splitProblem("%s.account: a merchant id is digits", at)
		case r.Type == ReceiverMerchant && r.Name == "":
			return splitProblem("%s.name: WeChat Pay requires a merchant receiver's full name", at)
		case utf8.RuneCountInString(r.Name) > maxName || !utf8.ValidString(r.Name):
			return splitProblem("%s.name: at most %d characters", at, maxName)
		case !slices.Contains(relationTypes, r.RelationType):
			return splitProblem("%s.relation_type: one of %v", at, relationTypes)
		case r.RelationType == RelationCustom && (r.CustomRelation == "" || utf8.RuneCountInString(r.CustomRelation) > maxCustomRelation):
			return splitProblem("%s.custom_relation: 1-%d characters when relation_type is CUSTOM", at, maxCustomRelation)
		case r.RelationType != RelationCustom && r.CustomRelation != "":
			return splitProblem("%s.custom_relation: only with relation_type CUSTOM", at)
		case (r.ShareBP > 0) == (r.FixedFen > 0):
			return splitProblem("%s: exactly one of share_bp (1-%d) and fixed_fen (1-%d) must be set", at, BasisPoints, MaxTotalFen)
		case r.ShareBP < 0 || r.ShareBP > BasisPoints || r.FixedFen < 0 || r.FixedFen > MaxTotalFen:
			return splitProblem("%s: share_bp is 1-%d, fixed_fen 1-%d", at, BasisPoints, MaxTotalFen)
		case utf8.RuneCountInString(r.Description) > maxShareDescription:
			return splitProblem("%s.description: at most %d characters", at, maxShareDescription)
		}
		key := string(r.Type) + "/" + r.Account
		if seen[key] {
			return splitProblem("%s: %s is listed twice", at, key)
		}
		seen[key] = true
		bp += r.ShareBP
	}
	if bp > maxBP {
		return &SplitProblem{Over: true, Message: fmt.Sprintf("split: the shares add up to %d basis points, above the merchant's maximum of %d", bp, maxBP)}
	}
	return nil
}

// Clone returns a deep copy (nil for nil), for an order's snapshot.
func (s *Split) Clone() *Split {
	if s == nil {
		return nil
	}
	c := *s
	c.Receivers = slices.Clone(s.Receivers)
	return &c
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Share is one receiver's amount in a planned split.
type Share struct {
	Receiver  Receiver `bson:"receiver" json:"receiver"`
	AmountFen int64    `bson:"amount_fen" json:"amount_fen"`
}

// PlanSplit computes each receiver's amount, with integer arithmetic only:
// a share in basis points is floor(paid × bp / 10000), a fixed share is its
// amount. base is what may still be split (the paid amount less refunds):
// fixed shares and the total are checked against it. A receiver whose
// amount comes to less than MinShareFen is left out. The total never
// exceeds floor(paid × maxBP / 10000) (the merchant's maximum ratio, which
// WeChat Pay applies to the amount paid) nor base: a rule that would is
// refused with a *SplitProblem (Over set), and the order is not split.
func PlanSplit(s Split, paid, base, maxBP int64) ([]Share, error) {
	if paid < 1 || paid > MaxTotalFen || base < 0 || base > paid || maxBP < 0 || maxBP > BasisPoints {
		return nil, splitProblem("plan: paid %d, base %d, max %d bp out of range", paid, base, maxBP)
	}
	limit := paid * maxBP / BasisPoints // paid ≤ 1e8 and bp ≤ 1e4: no overflow
	var shares []Share
	var total int64
	for _, r := range s.Receivers {
		amount := r.FixedFen
		if r.ShareBP > 0 {
			amount = paid * r.ShareBP / BasisPoints
		}
		if amount < MinShareFen {
			continue
		}
		total += amount
		shares = append(shares, Share{Receiver: r, AmountFen: amount})
	}
	switch {
	case total > limit:
		return nil, &SplitProblem{Over: true, Message: fmt.Sprintf("the split of %d fen exceeds the merchant's maximum of %d bp of %d fen paid (%d fen)", total, maxBP, paid, limit)}
	case total > base:
		return nil, &SplitProblem{Over: true, Message: fmt.Sprintf("the split of %d fen exceeds the %d fen left to split", total, base)}
	}
	return shares, nil
}

// SplitOrderNo is the out_order_no of an order's split: derived from the
// order id, so a run that crashed re-sends the same request and WeChat Pay,
// idempotent per out_order_no, splits once.
func SplitOrderNo(orderID string) string { return "PS" + orderID }

// UnfreezeOrderNo is the out_order_no of the unfreeze of an order's
// remainder (WeChat Pay wants a number of its own for it).
func UnfreezeOrderNo(orderID string) string { return "PU" + orderID }

// ReturnNo is the out_return_no of the return of receiver account's share
// for refund outRefundNo: a hash, since the two together may pass 64
// characters; deterministic, so a crashed run re-sends it.
func ReturnNo(outRefundNo, account string) string {
	h := sha256.Sum256([]byte(outRefundNo + "|" + account))
	return "PR" + hex.EncodeToString(h[:15])
}

// Split states: an order's split moves PLANNED → SENT → SPLIT → DONE, once,
// each step a record the next run takes up. DONE carries the outcome.
const (
	SplitPlanned = "PLANNED" // amounts decided (the plan claim); not yet sent
	SplitSent    = "SENT"    // CreateOrder accepted; following its result
	SplitSplit   = "SPLIT"   // FINISHED at WeChat Pay; remainder being unfrozen
	SplitDone    = "DONE"    // unfrozen; Outcome says how it went
)

// Split outcomes.
const (
	SplitFinished = "FINISHED" // every receiver got its share
	SplitPartial  = "PARTIAL"  // some receivers failed (CLOSED): their shares stayed with the merchant
	SplitRefused  = "REFUSED"  // nothing split (over the limit, nothing left, not a split order): all unfrozen to the merchant
)

// SplitPlan is an order's split as decided once, by the claim
// SplitPlanKey: every run sends exactly this.
type SplitPlan struct {
	Key           string  `bson:"_id" json:"-"`
	OrderID       string  `bson:"order_id" json:"order_id"`
	AppID         string  `bson:"app_id,omitempty" json:"-"`
	TransactionID string  `bson:"transaction_id" json:"transaction_id"`
	WeChatAppID   string  `bson:"wechat_appid,omitempty" json:"-"`
	OutOrderNo    string  `bson:"out_order_no" json:"out_order_no"`
	PaidFen       int64   `bson:"paid_fen" json:"paid_fen"`
	Shares        []Share `bson:"shares" json:"shares"`
	Refused       string  `bson:"refused,omitempty" json:"refused,omitempty"` // why nothing is split
	// Accounted are the refunds the plan took off what was left to split:
	// nothing of theirs is returned later.
	Accounted []string  `bson:"accounted_refunds,omitempty" json:"accounted_refunds,omitempty"`
	DecidedAt time.Time `bson:"decided_at" json:"decided_at"`
}

// SplitPlanKey is the claim key of an order's split plan.
func SplitPlanKey(orderID string) string { return "split-plan:" + orderID }

// SplitDoneKey is the claim key of an order's split outcome.
func SplitDoneKey(orderID string) string { return "split-done:" + orderID }

// ShareResult is what became of one share at WeChat Pay.
type ShareResult struct {
	Type       ReceiverType `bson:"type" json:"type"`
	Account    string       `bson:"account" json:"account"`
	AmountFen  int64        `bson:"amount_fen" json:"amount_fen"`
	Result     string       `bson:"result" json:"result"` // PENDING, SUCCESS, CLOSED
	FailReason string       `bson:"fail_reason,omitempty" json:"fail_reason,omitempty"`
	DetailID   string       `bson:"detail_id,omitempty" json:"detail_id,omitempty"`
}

// SplitOutcome is an order's split as it ended, decided once by the claim
// SplitDoneKey.
type SplitOutcome struct {
	Key         string        `bson:"_id" json:"-"`
	OrderID     string        `bson:"order_id" json:"order_id"`
	Outcome     string        `bson:"outcome" json:"outcome"`
	SplitFen    int64         `bson:"split_fen" json:"split_fen"` // what receivers got
	Results     []ShareResult `bson:"results" json:"results"`
	WeChatOrder string        `bson:"wechat_order_id,omitempty" json:"wechat_order_id,omitempty"`
	Reason      string        `bson:"reason,omitempty" json:"reason,omitempty"`
	DecidedAt   time.Time     `bson:"decided_at" json:"decided_at"`
}

// SplitTask is the job's bookkeeping for one order's split: where it is
// and when it is next due. Only the claims decide; a task is rewritten
// freely (idempotent steps) and may lag them.
type SplitTask struct {
	ID        string        `bson:"_id" json:"order_id"` // the order id
	AppID     string        `bson:"app_id,omitempty" json:"-"`
	State     string        `bson:"state" json:"state"` // "" (not planned), or a Split* state
	Open      bool          `bson:"open" json:"open"`
	DueAt     time.Time     `bson:"due_at" json:"due_at"`
	Results   []ShareResult `bson:"results,omitempty" json:"results,omitempty"`
	CreatedAt time.Time     `bson:"created_at" json:"created_at"`
	UpdatedAt time.Time     `bson:"updated_at" json:"updated_at"`
}

// ReturnTask is the job's bookkeeping for returning receivers' shares
// after one refund of a split order.
type ReturnTask struct {
	ID        string    `bson:"_id" json:"out_refund_no"` // the refund's number
	OrderID   string    `bson:"order_id" json:"order_id"`
	AppID     string    `bson:"app_id,omitempty" json:"-"`
	Open      bool      `bson:"open" json:"open"`
	DueAt     time.Time `bson:"due_at" json:"due_at"`
	Note      string    `bson:"note,omitempty" json:"note,omitempty"`
	CreatedAt time.Time `bson:"created_at" json:"created_at"`
	UpdatedAt time.Time `bson:"updated_at" json:"updated_at"`
}

// ShareReturn is one receiver's return for one refund, decided once (its
// amount) by the claim ReturnKey and then followed to its result.
type ShareReturn struct {
	Key         string    `bson:"_id" json:"-"`
	OutReturnNo string    `bson:"out_return_no" json:"out_return_no"`
	OutRefundNo string    `bson:"out_refund_no" json:"out_refund_no"`
	OrderID     string    `bson:"order_id" json:"order_id"`
	Account     string    `bson:"account" json:"account"`
	AmountFen   int64     `bson:"amount_fen" json:"amount_fen"`
	DecidedAt   time.Time `bson:"decided_at" json:"decided_at"`
}

// ReturnKey is the claim key of a return.
func ReturnKey(outReturnNo string) string { return "split-return:" + outReturnNo }

// ReturnResultKey is the claim key of a return's final result.
func ReturnResultKey(outReturnNo string) string { return "split-return-done:" + outReturnNo }

// ReturnOutcome is a return's final result at WeChat Pay.
type ReturnOutcome struct {
	Key         string    `bson:"_id" json:"-"`
	OutReturnNo string    `bson:"out_return_no" json:"out_return_no"`
	OrderID     string    `bson:"order_id" json:"order_id"`
	AmountFen   int64     `bson:"amount_fen" json:"amount_fen"`
	Result      string    `bson:"result" json:"result"` // SUCCESS, FAILED
	FailReason  string    `bson:"fail_reason,omitempty" json:"fail_reason,omitempty"`
	DecidedAt   time.Time `bson:"decided_at" json:"decided_at"`
}

// ReturnAmount is what receiver's share of amount fen returns for the
// refunds of a paid order: with refunds sorted by slot, the refund that
// brings the refunded total from before to before+refund returns
// floor(share × (before+refund) / paid) − floor(share × before / paid).
// The returns of all an order's refunds add up to exactly
// floor(share × refunded / paid), the whole share once all is refunded.
func ReturnAmount(share, paid, before, refund int64) int64 {
	if paid < 1 || share < 1 || refund < 1 || before < 0 || before+refund > paid {
		return 0
	}
	// share ≤ paid ≤ 1e8: the products stay below 1e16.
	return share*(before+refund)/paid - share*before/paid
}
