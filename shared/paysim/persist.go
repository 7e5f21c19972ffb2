package paysim

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// stateVersion is the layout of the state file; a file of another version is
// refused rather than half read.
const stateVersion = 1

// snapshot is what Options.StatePath holds: the trades, prepay_ids and
// refunds, so a simulator started again on the same file can pay, query,
// close and refund what its predecessor created. Login codes (five minutes),
// delivery history, faults and the refund behaviour are not kept: they are
// per-run knobs or short-lived, and a notification still being retried when
// the simulator stopped is not resumed (the merchant's queryOrder and
// reconcile recover it, as they would a lost one).
type snapshot struct {
	Version int            `json:"version"`
	MchID   string         `json:"mchid"`
	SavedAt time.Time      `json:"saved_at"`
	Trades  []tradeRecord  `json:"trades"`
	Prepays []prepayRecord `json:"prepays"`
	Refunds []refundRecord `json:"refunds"`
}

type tradeRecord struct {
	Params      prepayParams `json:"params"`
	CreatedAt   time.Time    `json:"created_at"`
	Deadline    time.Time    `json:"deadline"`
	State       string       `json:"state"`
	TxID        string       `json:"transaction_id,omitempty"`
	SuccessTime time.Time    `json:"success_time,omitzero"`
	PaidTotal   int64        `json:"paid_total,omitempty"`
	PrepayIDs   []string     `json:"prepay_ids"`
	Refunded    bool         `json:"refunded,omitempty"`
}

type prepayRecord struct {
	ID         string    `json:"id"`
	OutTradeNo string    `json:"out_trade_no"`
	ExpiresAt  time.Time `json:"expires_at"`
}

type refundRecord struct {
	OutTradeNo  string    `json:"out_trade_no"`
	OutRefundNo string    `json:"out_refund_no"`
	RefundID    string    `json:"refund_id"`
	TxID        string    `json:"transaction_id"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason,omitempty"`
	NotifyURL   string    `json:"notify_url,omitempty"`
	Refund      int64     `json:"refund"`
	Total       int64     `json:"total"`
	CreatedAt   time.Time `json:"created_at"`
	SuccessTime time.Time `json:"success_time,omitzero"`
}

// loadState fills the maps from the state file; a missing file (or none)
// is a first run. Called from New, before anything else can touch the maps.
func (s *Server) loadState() error {
	var snap snapshot
	found, err := s.state.Load(&snap, func() int { return snap.Version }, stateVersion)
	if !found || err != nil {
		return err
	}
	statePath := s.state.Path()
	if snap.MchID != s.mchID {
		return fmt.Errorf("paysim state %s: belongs to merchant %q, not %q (delete it to start the simulator empty)", statePath, snap.MchID, s.mchID)
	}
	for _, r := range snap.Trades {
		t := &trade{
			p: r.Params, createdAt: r.CreatedAt, deadline: r.Deadline, state: r.State, txID: r.TxID,
			successTime: r.SuccessTime, paidTotal: r.PaidTotal, prepayIDs: r.PrepayIDs, refunded: r.Refunded,
		}
		s.trades[r.Params.OutTradeNo] = t
		if t.txID != "" {
			s.byTxID[t.txID] = r.Params.OutTradeNo
		}
	}
	for _, p := range snap.Prepays {
		if _, ok := s.trades[p.OutTradeNo]; !ok {
			return fmt.Errorf("paysim state %s: prepay_id %s names unknown out_trade_no %s", statePath, p.ID, p.OutTradeNo)
		}
		s.prepays[p.ID] = &prepay{id: p.ID, outTradeNo: p.OutTradeNo, expiresAt: p.ExpiresAt}
	}
	for _, r := range snap.Refunds {
		if _, ok := s.trades[r.OutTradeNo]; !ok {
			return fmt.Errorf("paysim state %s: refund %s names unknown out_trade_no %s", statePath, r.OutRefundNo, r.OutTradeNo)
		}
		s.refunds[r.OutRefundNo] = &refund{
			OutTradeNo: r.OutTradeNo, OutRefundNo: r.OutRefundNo, RefundID: r.RefundID, TxID: r.TxID,
			Status: r.Status, Reason: r.Reason, NotifyURL: r.NotifyURL, Refund: r.Refund, Total: r.Total,
			CreatedAt: r.CreatedAt, SuccessTime: r.SuccessTime,
		}
	}
	s.log.Info("paysim state loaded", "path", statePath, "trades", len(snap.Trades), "refunds", len(snap.Refunds))
	return nil
}

// snapshotLocked encodes the state; sorted so the file diffs cleanly.
func (s *Server) snapshotLocked() ([]byte, error) {
	snap := snapshot{Version: stateVersion, MchID: s.mchID, SavedAt: s.now()}
	for _, t := range s.trades {
		snap.Trades = append(snap.Trades, tradeRecord{
			Params: t.p, CreatedAt: t.createdAt, Deadline: t.deadline, State: t.state, TxID: t.txID,
			SuccessTime: t.successTime, PaidTotal: t.paidTotal, PrepayIDs: t.prepayIDs, Refunded: t.refunded,
		})
	}
	for _, p := range s.prepays {
		snap.Prepays = append(snap.Prepays, prepayRecord{ID: p.id, OutTradeNo: p.outTradeNo, ExpiresAt: p.expiresAt})
	}
	for _, r := range s.refunds {
		snap.Refunds = append(snap.Refunds, refundRecord{
			OutTradeNo: r.OutTradeNo, OutRefundNo: r.OutRefundNo, RefundID: r.RefundID, TxID: r.TxID,
			Status: r.Status, Reason: r.Reason, NotifyURL: r.NotifyURL, Refund: r.Refund, Total: r.Total,
			CreatedAt: r.CreatedAt, SuccessTime: r.SuccessTime,
		})
	}
	sort.Slice(snap.Trades, func(i, j int) bool { return snap.Trades[i].Params.OutTradeNo < snap.Trades[j].Params.OutTradeNo })
	sort.Slice(snap.Prepays, func(i, j int) bool { return snap.Prepays[i].ID < snap.Prepays[j].ID })
	sort.Slice(snap.Refunds, func(i, j int) bool { return snap.Refunds[i].OutRefundNo < snap.Refunds[j].OutRefundNo })
	return json.Marshal(snap)
}

// encodeState is the state file's encoder (simkit.StateFile).
func (s *Server) encodeState() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked()
}

// changedLocked records that the state changed; the state file's saver
// writes it soon after. Without a state path it does nothing.
func (s *Server) changedLocked() { s.state.Changed() }
