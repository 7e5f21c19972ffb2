package paysim

import (
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"time"
	"unicode/utf8"
)

// Profit sharing (分账), as an ordinary (直连) merchant sees it:
//
//	POST /v3/profitsharing/receivers/add
//	POST /v3/profitsharing/orders                         (split)
//	GET  /v3/profitsharing/orders/{out_order_no}?transaction_id=
//	POST /v3/profitsharing/orders/unfreeze
//	POST /v3/profitsharing/return-orders
//	GET  /v3/profitsharing/return-orders/{out_return_no}?out_order_no=
//	GET  /v3/profitsharing/transactions/{transaction_id}/amounts
//
// A split is PROCESSING when accepted, its receivers PENDING; after
// SharingBehaviour.ProcessingQueries queries it is FINISHED, each receiver
// SUCCESS, or CLOSED with its fail_reason when the behaviour says so (the
// CLOSED amount goes back to what is left to split). An unfreeze releases
// everything left to the merchant, listed as one MERCHANT_ID receiver (the
// merchant itself). Returns are answered at once, SUCCESS or FAILED.
//
// Refused as WeChat Pay refuses them (400 INVALID_REQUEST unless noted;
// the messages are WeChat's): a split of a payment not prepaid with
// settle_info.profit_sharing ("非分账订单不支持分账"), over the maximum ratio
// ("分账金额超出最大分账比例"), over what is left ("分账金额不足"), too soon
// after payment ("订单处理中,请稍后重试"), of an unknown receiver relation,
// more than 50 receivers (PARAM_ERROR) or 50 requests per payment; a
// return of more than the receiver got, from a personal receiver, or of a
// split not FINISHED. The same out_order_no or out_return_no sent again
// answers the first request's record. The maximum ratio applies to the
// amount paid (the simulator charges no fee).
//
// Sharing state is kept in memory only (not in Options.StatePath).

// SharingBehaviour shapes the profit-sharing API.
type SharingBehaviour struct {
	// MaxRatioBP is the merchant's maximum split ratio in basis points;
	// default 3000 (30 %).
	MaxRatioBP int64
	// ProcessingQueries is how many queries of a split or unfreeze answer
	// PROCESSING before it is FINISHED; default 1, negative: none.
	ProcessingQueries int
	// FailAccounts makes splits to these receiver accounts end CLOSED with
	// the given fail_reason (e.g. "ACCOUNT_ABNORMAL").
	FailAccounts map[string]string
	// FailReturns makes returns from these accounts FAILED with the given
	// fail_reason (e.g. "BALANCE_NOT_ENOUGH").
	FailReturns map[string]string
	// MinAfterPay refuses a split sooner than this after payment (WeChat
	// Pay: one minute); default none.
	MinAfterPay time.Duration
}

type sharingState struct {
	mu        sync.Mutex
	beh       SharingBehaviour
	receivers map[string]bool        // type/account added
	orders    map[string]*simSplit   // by out_order_no
	returns   map[string]*simReturn  // by out_return_no
	byTx      map[string]*simSharing // by transaction_id
	requests  map[string]int         // split requests received, by out_order_no
}

type simSharing struct {
	orders      []string // out_order_no of its splits, in order
	unfrozen    bool
	unfrozenFen int64
}

type simSplit struct {
	orderID, outOrderNo, txID string
	unfreeze                  bool
	details                   []*simDetail
	queries                   int
	finished                  bool
	created                   time.Time
}

type simDetail struct {
	Type, Account, Description, DetailID string
	Amount                               int64
	Result, FailReason                   string
	Finish                               time.Time
}

type simReturn struct {
	returnID, outReturnNo, outOrderNo, orderID, mchID, description, result, failReason string
	amount                                                                             int64
	created                                                                            time.Time
}

func (s *Server) sharing() *sharingState {
	s.sharingOnce.Do(func() {
		s.sharingSt = &sharingState{receivers: map[string]bool{}, orders: map[string]*simSplit{},
			returns: map[string]*simReturn{}, byTx: map[string]*simSharing{}, requests: map[string]int{}}
	})
	return s.sharingSt
}

// SetSharingBehaviour sets how the profit-sharing API behaves.
func (s *Server) SetSharingBehaviour(b SharingBehaviour) {
	sh := s.sharing()
	sh.mu.Lock()
	sh.beh = b
	sh.mu.Unlock()
}

// SplitRequests is how many split requests with out_order_no arrived
// (accepted, repeated or refused).
func (s *Server) SplitRequests(outOrderNo string) int {
	sh := s.sharing()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.requests[outOrderNo]
}

// ShareView is one receiver's part of a split as the simulator holds it.
type ShareView struct {
	Type, Account, Result, FailReason string
	AmountFen                         int64
}

// SplitView is one split (or unfreeze) of a payment.
type SplitView struct {
	OutOrderNo string
	Unfreeze   bool
	Finished   bool
	Shares     []ShareView
}

// SharingView is a payment's profit sharing.
type SharingView struct {
	PaidFen     int64
	UnsplitFen  int64 // what is left to split (0 once unfrozen)
	Unfrozen    bool
	UnfrozenFen int64 // what the unfreeze released to the merchant
	Splits      []SplitView
	ReturnedFen int64 // returned by receivers (SUCCESS returns)
}

// Sharing returns the profit sharing of transactionID.
func (s *Server) Sharing(transactionID string) SharingView {
	sh := s.sharing()
	s.mu.Lock()
	defer s.mu.Unlock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	v := SharingView{}
	if t := s.tradeByTxLocked(transactionID); t != nil {
		v.PaidFen = t.paidTotal
	}
	v.UnsplitFen = s.unsplitLocked(sh, transactionID)
	if st := sh.byTx[transactionID]; st != nil {
		v.Unfrozen, v.UnfrozenFen = st.unfrozen, st.unfrozenFen
		for _, no := range st.orders {
			o := sh.orders[no]
			sv := SplitView{OutOrderNo: no, Unfreeze: o.unfreeze, Finished: o.finished}
			for _, d := range o.details {
				sv.Shares = append(sv.Shares, ShareView{Type: d.Type, Account: d.Account, Result: d.Result, FailReason: d.FailReason, AmountFen: d.Amount})
			}
			v.Splits = append(v.Splits, sv)
			for _, r := range sh.returns {
				if r.outOrderNo == no && r.result == "SUCCESS" {
					v.ReturnedFen += r.amount
				}
			}
		}
	}
	return v
}

// ReceivedFen is what account holds from splits: shares paid to it less
// what it returned.
func (s *Server) ReceivedFen(account string) int64 {
	sh := s.sharing()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var n int64
	for _, o := range sh.orders {
		if o.unfreeze {
			continue
		}
		for _, d := range o.details {
			if d.Account == account && d.Result == "SUCCESS" {
				n += d.Amount
			}
		}
	}
	for _, r := range sh.returns {
		if r.mchID == account && r.result == "SUCCESS" {
			n -= r.amount
		}
	}
	return n
}

func (s *Server) sharingRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /v3/profitsharing/receivers/add", s.v3(s.handleAddReceiver))
	m.HandleFunc("POST /v3/profitsharing/orders", s.v3(s.handleSplit))
	m.HandleFunc("POST /v3/profitsharing/orders/unfreeze", s.v3(s.handleUnfreeze))
	m.HandleFunc("GET /v3/profitsharing/orders/{no}", s.v3(s.handleQuerySplit))
	m.HandleFunc("POST /v3/profitsharing/return-orders", s.v3(s.handleReturn))
	m.HandleFunc("GET /v3/profitsharing/return-orders/{no}", s.v3(s.handleQueryReturn))
	m.HandleFunc("GET /v3/profitsharing/transactions/{id}/amounts", s.v3(s.handleAmounts))
}

// prepayProfitSharing reads settle_info.profit_sharing from a prepay body.
func prepayProfitSharing(body []byte) bool {
	var b struct {
		SettleInfo *struct {
			ProfitSharing *bool `json:"profit_sharing"`
		} `json:"settle_info"`
	}
	_ = json.Unmarshal(body, &b)
	return b.SettleInfo != nil && b.SettleInfo.ProfitSharing != nil && *b.SettleInfo.ProfitSharing
}

var (
	shareNoRE       = regexp.MustCompile(`^[0-9A-Za-z_*@|-]{1,64}$`)
	relationTypesRE = regexp.MustCompile(`^(SERVICE_PROVIDER|STORE|STAFF|STORE_OWNER|PARTNER|HEADQUARTER|BRAND|DISTRIBUTOR|USER|SUPPLIER|CUSTOM)$`)
)

const (
	maxShareReceivers   = 50
	maxSplitsPerPayment = 50
	maxReturnsPerSplit  = 50
	codeInvalidRequest  = "INVALID_REQUEST"
)

func invalid(message string) reply {
	return errReply(http.StatusBadRequest, codeInvalidRequest, message)
}

// tradeByTxLocked returns the paid trade of a transaction id (s.mu held).
func (s *Server) tradeByTxLocked(txID string) *trade {
	no, ok := s.byTxID[txID]
	if !ok {
		return nil
	}
	return s.trades[no]
}

// unsplitLocked is what is left to split of a payment: paid, less refunds
// not closed, less shares not closed; 0 once unfrozen (s.mu and sh.mu
// held).
func (s *Server) unsplitLocked(sh *sharingState, txID string) int64 {
	t := s.tradeByTxLocked(txID)
	if t == nil || !t.p.ProfitSharing {
		return 0
	}
	st := sh.byTx[txID]
	if st != nil && st.unfrozen {
		return 0
	}
	left := t.paidTotal
	for _, r := range s.refunds {
		if r.OutTradeNo == t.p.OutTradeNo && r.Status != "CLOSED" {
			left -= r.Refund
		}
	}
	if st != nil {
		left -= sh.splitLocked(st)
	}
	return max(0, left)
}

// splitLocked is what a payment's splits send, CLOSED shares left out.
func (sh *sharingState) splitLocked(st *simSharing) int64 {
	var n int64
	for _, no := range st.orders {
		o := sh.orders[no]
		if o.unfreeze {
			continue
		}
		for _, d := range o.details {
			if d.Result != "CLOSED" {
				n += d.Amount
			}
		}
	}
	return n
}

// decryptName opens a name the SDK encrypted with the platform key
// (RSA-OAEP with SHA-1, base64).
func (s *Server) decryptName(ct string) (string, bool) {
	raw, err := base64.StdEncoding.DecodeString(ct)
	if err != nil {
		return "", false
	}
	pt, err := rsa.DecryptOAEP(sha1.New(), nil, s.platformKey, raw, nil)
	if err != nil || !utf8.Valid(pt) {
		return "", false
	}
	return string(pt), true
}

func (s *Server) handleAddReceiver(r *http.Request, body []byte) reply {
	var b struct {
		AppID          string  `json:"appid"`
		Type           string  `json:"type"`
		Account        string  `json:"account"`
		Name           *string `json:"name"`
		RelationType   string  `json:"relation_type"`
		CustomRelation string  `json:"custom_relation"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "body is not valid JSON")
	}
	switch {
	case !s.bound(b.AppID):
		return errReply(http.StatusBadRequest, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
	case b.Type != "MERCHANT_ID" && b.Type != "PERSONAL_OPENID":
		return paramError("/type", "must be MERCHANT_ID or PERSONAL_OPENID")
	case b.Account == "" || len(b.Account) > 64:
		return paramError("/account", "1-64 characters")
	case !relationTypesRE.MatchString(b.RelationType):
		return paramError("/relation_type", "unknown relation type")
	case b.RelationType == "CUSTOM" && b.CustomRelation == "":
		return paramError("/custom_relation", "required when relation_type is CUSTOM")
	case b.Type == "MERCHANT_ID" && b.Name == nil:
		return paramError("/name", "required for a MERCHANT_ID receiver")
	case b.Type == "MERCHANT_ID" && b.Account == s.mchID:
		return invalid("分账接收方不能是分账方本身")
	}
	if b.Name != nil {
		serial := r.Header.Get("Wechatpay-Serial")
		if serial != s.publicKeyID && serial != s.certSerial {
			return paramError("Wechatpay-Serial", "a sensitive field needs the serial of the key that encrypted it")
		}
		if _, ok := s.decryptName(*b.Name); !ok {
			return paramError("/name", "cannot be decrypted with the WeChat Pay key: encrypt it with RSA-OAEP")
		}
	}
	sh := s.sharing()
	sh.mu.Lock()
	sh.receivers[b.Type+"/"+b.Account] = true
	sh.mu.Unlock()
	out := map[string]string{"type": b.Type, "account": b.Account, "relation_type": b.RelationType}
	if b.CustomRelation != "" {
		out["custom_relation"] = b.CustomRelation
	}
	return reply{status: http.StatusOK, body: out}
}

// orderJSON is WeChat Pay's OrdersEntity.
func (o *simSplit) orderJSON() map[string]any {
	state := "PROCESSING"
	if o.finished {
		state = "FINISHED"
	}
	rs := []map[string]any{}
	for _, d := range o.details {
		m := map[string]any{"type": d.Type, "account": d.Account, "amount": d.Amount, "description": d.Description,
			"result": d.Result, "detail_id": d.DetailID, "create_time": o.created.In(cst).Format(time.RFC3339),
			"finish_time": d.Finish.In(cst).Format(time.RFC3339)}
		if d.Finish.IsZero() {
			m["finish_time"] = o.created.In(cst).Format(time.RFC3339)
		}
		if d.FailReason != "" {
			m["fail_reason"] = d.FailReason
		}
		rs = append(rs, m)
	}
	return map[string]any{"order_id": o.orderID, "out_order_no": o.outOrderNo, "transaction_id": o.txID, "state": state, "receivers": rs}
}

func (s *Server) handleSplit(_ *http.Request, body []byte) reply {
	var b struct {
		AppID           string `json:"appid"`
		TransactionID   string `json:"transaction_id"`
		OutOrderNo      string `json:"out_order_no"`
		UnfreezeUnsplit *bool  `json:"unfreeze_unsplit"`
		Receivers       []struct {
			Type        string `json:"type"`
			Account     string `json:"account"`
			Amount      *int64 `json:"amount"`
			Description string `json:"description"`
		} `json:"receivers"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "body is not valid JSON")
	}
	sh := s.sharing()
	s.mu.Lock()
	defer s.mu.Unlock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if shareNoRE.MatchString(b.OutOrderNo) {
		sh.requests[b.OutOrderNo]++
	}
	switch {
	case !shareNoRE.MatchString(b.OutOrderNo):
		return paramError("/out_order_no", "1-64 characters of [0-9A-Za-z_*@|-]")
	case b.TransactionID == "":
		return paramError("/transaction_id", "required")
	case b.UnfreezeUnsplit == nil:
		return paramError("/unfreeze_unsplit", "required")
	case len(b.Receivers) == 0 || len(b.Receivers) > maxShareReceivers:
		return paramError("/receivers", fmt.Sprintf("1-%d receivers", maxShareReceivers))
	}
	if o, ok := sh.orders[b.OutOrderNo]; ok {
		if o.txID != b.TransactionID || o.unfreeze {
			return invalid("商户分账单号重复")
		}
		return reply{status: http.StatusOK, body: o.orderJSON()} // 同一分账单号多次请求等同一次
	}
	t := s.tradeByTxLocked(b.TransactionID)
	switch {
	case t == nil || (t.state != StateSuccess):
		return errReply(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "微信订单号不存在")
	case !t.p.ProfitSharing:
		return invalid("非分账订单不支持分账")
	case sh.beh.MinAfterPay > 0 && s.now().Sub(t.successTime) < sh.beh.MinAfterPay:
		return invalid("订单处理中,请稍后重试")
	}
	st := sh.byTx[b.TransactionID]
	if st == nil {
		st = &simSharing{}
		sh.byTx[b.TransactionID] = st
	}
	if len(st.orders) >= maxSplitsPerPayment {
		return invalid("对同一笔订单最多能发起50次分账请求")
	}
	var sum int64
	for i, r := range b.Receivers {
		at := fmt.Sprintf("/receivers/%d", i)
		switch {
		case r.Type != "MERCHANT_ID" && r.Type != "PERSONAL_OPENID":
			return paramError(at+"/type", "must be MERCHANT_ID or PERSONAL_OPENID")
		case r.Amount == nil || *r.Amount < 1:
			return paramError(at+"/amount", "a whole number of fen, at least 1")
		case r.Description == "" || utf8.RuneCountInString(r.Description) > 80:
			return paramError(at+"/description", "1-80 characters")
		case r.Type == "PERSONAL_OPENID" && !s.bound(b.AppID):
			return errReply(http.StatusBadRequest, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
		case !sh.receivers[r.Type+"/"+r.Account]:
			return invalid("分账接收方关系不存在,请检查参数中每个接收方的关系")
		}
		sum += *r.Amount
	}
	maxBP := cmpOr(sh.beh.MaxRatioBP, 3000)
	if sh.splitLocked(st)+sum > t.paidTotal*maxBP/10000 {
		return invalid("分账金额超出最大分账比例")
	}
	if sum > s.unsplitLocked(sh, b.TransactionID) {
		return invalid("分账金额不足")
	}
	now := s.now()
	o := &simSplit{orderID: "3008" + randDigits(24), outOrderNo: b.OutOrderNo, txID: b.TransactionID, created: now}
	for _, r := range b.Receivers {
		o.details = append(o.details, &simDetail{Type: r.Type, Account: r.Account, Amount: *r.Amount, Description: r.Description,
			DetailID: "3601" + randDigits(24), Result: "PENDING"})
	}
	sh.orders[o.outOrderNo] = o
	st.orders = append(st.orders, o.outOrderNo)
	if sh.beh.ProcessingQueries < 0 {
		s.finishLocked(sh, o)
	}
	if *b.UnfreezeUnsplit {
		s.unfreezeLocked(sh, st, b.TransactionID, "PU-"+o.outOrderNo)
	}
	s.log.Info("paysim split", "out_order_no", o.outOrderNo, "transaction_id", o.txID, "split_fen", sum)
	return reply{status: http.StatusOK, body: o.orderJSON()}
}

func cmpOr(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}

// finishLocked ends a split: each receiver SUCCESS, or CLOSED as the
// behaviour says.
func (s *Server) finishLocked(sh *sharingState, o *simSplit) {
	now := s.now()
	o.finished = true
	for _, d := range o.details {
		if d.Result != "PENDING" {
			continue
		}
		d.Result, d.Finish = "SUCCESS", now
		if reason, ok := sh.beh.FailAccounts[d.Account]; ok && !o.unfreeze {
			d.Result, d.FailReason = "CLOSED", reason
		}
	}
}

// unfreezeLocked releases what is left to the merchant as an order of its
// own.
func (s *Server) unfreezeLocked(sh *sharingState, st *simSharing, txID, outOrderNo string) *simSplit {
	left := s.unsplitLocked(sh, txID)
	st.unfrozen, st.unfrozenFen = true, left
	o := &simSplit{orderID: "3008" + randDigits(24), outOrderNo: outOrderNo, txID: txID, unfreeze: true, created: s.now(),
		details: []*simDetail{{Type: "MERCHANT_ID", Account: s.mchID, Amount: left, Description: "解冻给分账方", DetailID: "3601" + randDigits(24), Result: "PENDING"}}}
	sh.orders[outOrderNo] = o
	st.orders = append(st.orders, outOrderNo)
	if sh.beh.ProcessingQueries < 0 {
		s.finishLocked(sh, o)
	}
	return o
}

func (s *Server) handleUnfreeze(_ *http.Request, body []byte) reply {
	var b struct {
		TransactionID string `json:"transaction_id"`
		OutOrderNo    string `json:"out_order_no"`
		Description   string `json:"description"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "body is not valid JSON")
	}
	switch {
	case !shareNoRE.MatchString(b.OutOrderNo):
		return paramError("/out_order_no", "1-64 characters of [0-9A-Za-z_*@|-]")
	case b.Description == "" || utf8.RuneCountInString(b.Description) > 80:
		return paramError("/description", "1-80 characters")
	}
	sh := s.sharing()
	s.mu.Lock()
	defer s.mu.Unlock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if o, ok := sh.orders[b.OutOrderNo]; ok {
		if o.txID != b.TransactionID || !o.unfreeze {
			return invalid("商户分账单号重复")
		}
		return reply{status: http.StatusOK, body: o.orderJSON()}
	}
	t := s.tradeByTxLocked(b.TransactionID)
	switch {
	case t == nil || t.state != StateSuccess:
		return errReply(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "微信订单号不存在")
	case !t.p.ProfitSharing:
		return invalid("非分账订单不支持分账")
	}
	st := sh.byTx[b.TransactionID]
	if st == nil {
		st = &simSharing{}
		sh.byTx[b.TransactionID] = st
	}
	if st.unfrozen {
		return invalid("订单已解冻,分账金额不足")
	}
	for _, no := range st.orders {
		if o := sh.orders[no]; !o.finished {
			return invalid("分账处理中,请稍后重试")
		}
	}
	o := s.unfreezeLocked(sh, st, b.TransactionID, b.OutOrderNo)
	return reply{status: http.StatusOK, body: o.orderJSON()}
}

func (s *Server) handleQuerySplit(r *http.Request, _ []byte) reply {
	no, txID := r.PathValue("no"), r.URL.Query().Get("transaction_id")
	if txID == "" {
		return paramError("transaction_id", "required query parameter")
	}
	sh := s.sharing()
	s.mu.Lock()
	defer s.mu.Unlock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	o, ok := sh.orders[no]
	if !ok || o.txID != txID {
		return errReply(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "记录不存在")
	}
	if !o.finished {
		o.queries++
		pq := sh.beh.ProcessingQueries
		if pq == 0 {
			pq = 1
		}
		if o.queries > pq {
			s.finishLocked(sh, o)
		}
	}
	return reply{status: http.StatusOK, body: o.orderJSON()}
}

func (s *Server) handleAmounts(r *http.Request, _ []byte) reply {
	txID := r.PathValue("id")
	sh := s.sharing()
	s.mu.Lock()
	defer s.mu.Unlock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := s.tradeByTxLocked(txID)
	switch {
	case t == nil || (t.state != StateSuccess):
		return errReply(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "微信订单号不存在")
	case !t.p.ProfitSharing:
		return invalid("非分账订单不支持分账")
	}
	return reply{status: http.StatusOK, body: map[string]any{"transaction_id": txID, "unsplit_amount": s.unsplitLocked(sh, txID)}}
}

func (r *simReturn) returnJSON() map[string]any {
	m := map[string]any{"order_id": r.orderID, "out_order_no": r.outOrderNo, "out_return_no": r.outReturnNo, "return_id": r.returnID,
		"return_mchid": r.mchID, "amount": r.amount, "description": r.description, "result": r.result,
		"create_time": r.created.In(cst).Format(time.RFC3339), "finish_time": r.created.In(cst).Format(time.RFC3339)}
	if r.failReason != "" {
		m["fail_reason"] = r.failReason
	}
	return m
}

func (s *Server) handleReturn(_ *http.Request, body []byte) reply {
	var b struct {
		OrderID     string `json:"order_id"`
		OutOrderNo  string `json:"out_order_no"`
		OutReturnNo string `json:"out_return_no"`
		ReturnMchID string `json:"return_mchid"`
		Amount      *int64 `json:"amount"`
		Description string `json:"description"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "body is not valid JSON")
	}
	switch {
	case !shareNoRE.MatchString(b.OutReturnNo):
		return paramError("/out_return_no", "1-64 characters of [0-9A-Za-z_*@|-]")
	case b.OutOrderNo == "" && b.OrderID == "":
		return paramError("/out_order_no", "out_order_no or order_id is required")
	case b.ReturnMchID == "":
		return paramError("/return_mchid", "required")
	case b.Amount == nil || *b.Amount < 1:
		return paramError("/amount", "a whole number of fen, at least 1")
	case b.Description == "" || utf8.RuneCountInString(b.Description) > 80:
		return paramError("/description", "1-80 characters")
	}
	sh := s.sharing()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if r, ok := sh.returns[b.OutReturnNo]; ok {
		return reply{status: http.StatusOK, body: r.returnJSON()}
	}
	var o *simSplit
	for _, x := range sh.orders {
		if !x.unfreeze && (x.outOrderNo == b.OutOrderNo || x.orderID == b.OrderID) {
			o = x
		}
	}
	if o == nil {
		return errReply(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "分账单不存在")
	}
	if !o.finished {
		return invalid("分账单处理中,不能回退")
	}
	var got int64 = -1
	for _, d := range o.details {
		if d.Account == b.ReturnMchID && d.Result == "SUCCESS" {
			if d.Type != "MERCHANT_ID" {
				return invalid("不支持分账给个人的分账单回退")
			}
			got = d.Amount
		}
	}
	if got < 0 {
		return invalid("回退方不是该分账单的成功分账接收方")
	}
	n := 0
	for _, r := range sh.returns {
		if r.outOrderNo == o.outOrderNo {
			n++
			if r.mchID == b.ReturnMchID && r.result != "FAILED" {
				got -= r.amount
			}
		}
	}
	if n >= maxReturnsPerSplit {
		return invalid("对同一笔分账单最多能发起50次分账回退请求")
	}
	if *b.Amount > got {
		return invalid("回退金额超过原分账单分给该接收方的金额")
	}
	r := &simReturn{returnID: "3008" + randDigits(24), outReturnNo: b.OutReturnNo, outOrderNo: o.outOrderNo, orderID: o.orderID,
		mchID: b.ReturnMchID, description: b.Description, amount: *b.Amount, result: "SUCCESS", created: s.now()}
	if reason, ok := sh.beh.FailReturns[b.ReturnMchID]; ok {
		r.result, r.failReason = "FAILED", reason
	}
	sh.returns[r.outReturnNo] = r
	return reply{status: http.StatusOK, body: r.returnJSON()}
}

func (s *Server) handleQueryReturn(r *http.Request, _ []byte) reply {
	no, outOrderNo := r.PathValue("no"), r.URL.Query().Get("out_order_no")
	if outOrderNo == "" {
		return paramError("out_order_no", "required query parameter")
	}
	sh := s.sharing()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ret, ok := sh.returns[no]
	if !ok || ret.outOrderNo != outOrderNo {
		return errReply(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "记录不存在")
	}
	return reply{status: http.StatusOK, body: ret.returnJSON()}
}
