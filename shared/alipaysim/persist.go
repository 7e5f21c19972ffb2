package alipaysim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

func (s *Server) loadState() error {
	b, err := os.ReadFile(s.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("alipaysim state: %w", err)
	}
	var snap snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return fmt.Errorf("alipaysim state %s: %w (delete it to start the simulator empty)", s.statePath, err)
	}
	if snap.Version != stateVersion {
		return fmt.Errorf("alipaysim state %s: version %d, want %d (delete it to start the simulator empty)", s.statePath, snap.Version, stateVersion)
	}
	if snap.AppID != s.appID {
		return fmt.Errorf("alipaysim state %s: belongs to app %q, not %q (delete it to start the simulator empty)", s.statePath, snap.AppID, s.appID)
	}
	for i := range snap.Trades {
		t := snap.Trades[i]
		s.trades[t.OutTradeNo] = &t
		s.byTradeNo[t.TradeNo] = t.OutTradeNo
	}
	for i := range snap.Refunds {
		r := snap.Refunds[i]
		if _, ok := s.trades[r.OutTradeNo]; !ok {
			return fmt.Errorf("alipaysim state %s: refund %s names unknown out_trade_no %s", s.statePath, r.OutRequestNo, r.OutTradeNo)
		}
		s.refunds[refundKey(r.OutTradeNo, r.OutRequestNo)] = &r
	}
	s.log.Info("alipaysim state loaded", "path", s.statePath, "trades", len(snap.Trades), "refunds", len(snap.Refunds))
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

// changedLocked records that the state changed; the saver writes it soon.
func (s *Server) changedLocked() {
	if s.statePath == "" {
		return
	}
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

func (s *Server) saver() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.dirty:
		}
		if err := s.save(); err != nil {
			s.log.Error("alipaysim state save", "path", s.statePath, "err", err)
		}
	}
}

// save writes the state to a temporary file beside the state file and
// renames it over it, so a crash mid-write leaves the previous state whole.
func (s *Server) save() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	b, err := s.snapshotLocked()
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode alipaysim state: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(s.statePath), "."+filepath.Base(s.statePath)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write alipaysim state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write alipaysim state %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync alipaysim state %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close alipaysim state %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, s.statePath); err != nil {
		return fmt.Errorf("replace alipaysim state: %w", err)
	}
	return nil
}
