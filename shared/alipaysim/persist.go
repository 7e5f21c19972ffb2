package alipaysim

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// stateVersion is the layout of the state file; another version is refused
// rather than half read.
const stateVersion = 1

// snapshot is what the state file holds: trades and refunds, so a
// simulator started again on the same file can pay, query, close and refund
// what its predecessor created. Notifications, their delivery history and
// faults are not kept: a notification still being retried when the
// simulator stopped is not resumed (the merchant's query recovers it, as it
// would a lost one).
type snapshot struct {
	Version int           `json:"version"`
	AppID   string        `json:"app_id"`
	SavedAt time.Time     `json:"saved_at"`
	Trades  []TradeState  `json:"trades"`
	Refunds []RefundState `json:"refunds"`
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
	if snap.AppID != s.appID {
		return fmt.Errorf("alipaysim state %s: belongs to app %q, not %q (delete it to start the simulator empty)", statePath, snap.AppID, s.appID)
	}
	for i := range snap.Trades {
		t := snap.Trades[i]
		s.trades[t.OutTradeNo] = &t
		s.byTradeNo[t.TradeNo] = t.OutTradeNo
	}
	for i := range snap.Refunds {
		r := snap.Refunds[i]
		if _, ok := s.trades[r.OutTradeNo]; !ok {
			return fmt.Errorf("alipaysim state %s: refund %s names unknown out_trade_no %s", statePath, r.OutRequestNo, r.OutTradeNo)
		}
		s.refunds[refundKey(r.OutTradeNo, r.OutRequestNo)] = &r
	}
	s.log.Info("alipaysim state loaded", "path", statePath, "trades", len(snap.Trades), "refunds", len(snap.Refunds))
	return nil
}

func (s *Server) snapshotLocked() ([]byte, error) {
	snap := snapshot{Version: stateVersion, AppID: s.appID, SavedAt: s.now(), Trades: []TradeState{}, Refunds: []RefundState{}}
	for _, t := range s.trades {
		snap.Trades = append(snap.Trades, *t)
	}
	for _, r := range s.refunds {
		snap.Refunds = append(snap.Refunds, *r)
	}
	sort.Slice(snap.Trades, func(i, j int) bool { return snap.Trades[i].OutTradeNo < snap.Trades[j].OutTradeNo })
	sort.Slice(snap.Refunds, func(i, j int) bool {
		return refundKey(snap.Refunds[i].OutTradeNo, snap.Refunds[i].OutRequestNo) < refundKey(snap.Refunds[j].OutTradeNo, snap.Refunds[j].OutRequestNo)
	})
	return json.MarshalIndent(snap, "", "  ")
}

// encodeState is the state file's encoder (simkit.StateFile).
func (s *Server) encodeState() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked()
}

// changedLocked records that the state changed; the saver writes it soon.
func (s *Server) changedLocked() { s.state.Changed() }
