package simkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// StateFile keeps a simulator's state in one JSON file: Load reads it on
// start, Changed asks for a write, Run writes soon after each request
// (coalescing bursts into one write) and Save writes now. Each write goes to
// a temporary file beside it, synced and renamed over it, so a crash
// mid-write leaves the previous state whole.
//
// The methods of a nil *StateFile do nothing, so a simulator kept in memory
// needs no checks.
type StateFile struct {
	name   string
	path   string
	encode func() ([]byte, error)
	log    *slog.Logger
	dirty  chan struct{} // a save is due (capacity 1)
	saveMu sync.Mutex    // one writer of the file at a time
}

// NewStateFile returns the state file at path, or nil when path is empty.
// encode returns the whole state, taking whatever lock it needs; name
// prefixes errors and log lines ("paysim"); log may be nil (discard).
func NewStateFile(name, path string, encode func() ([]byte, error), log *slog.Logger) *StateFile {
	if path == "" {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &StateFile{name: name, path: path, encode: encode, log: log,
		dirty: make(chan struct{}, 1)}
}

// Path is the file's path ("" for a nil StateFile).
func (f *StateFile) Path() string {
	if f == nil {
		return ""
	}
	return f.path
}

// Load decodes the file into snap and checks its version, read by
// version(snap), against want. A missing file is a first run: found is
// false and snap untouched. Errors name the file and tell the operator to
// delete it to start empty.
func (f *StateFile) Load(snap any, version func() int, want int) (found bool, err error) {
	if f == nil {
		return false, nil
	}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s state: %w", f.name, err)
	}
	if err := json.Unmarshal(b, snap); err != nil {
		return false, fmt.Errorf("%s state %s: %w (delete it to start the simulator empty)", f.name, f.path, err)
	}
	if v := version(); v != want {
		return false, fmt.Errorf("%s state %s: version %d, want %d (delete it to start the simulator empty)", f.name, f.path, v, want)
	}
	return true, nil
}

// Changed records that the state changed; Run writes it soon after. It
// never blocks, so it may be called with the simulator's lock held.
func (f *StateFile) Changed() {
	if f == nil {
		return
	}
	select {
	case f.dirty <- struct{}{}:
	default: // a save is already due; it will include this change
	}
}

// Run saves after each Changed until ctx ends (the owner's Close then
// calls Save for the last write). Failures are logged; the next change
// tries again.
func (f *StateFile) Run(ctx context.Context) {
	if f == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.dirty:
		}
		if err := f.Save(); err != nil {
			f.log.Error(f.name+" state save", "path", f.path, "err", err)
		}
	}
}

// Save encodes the state and writes it atomically: to a temporary file
// beside the state file, synced, then renamed over it.
func (f *StateFile) Save() error {
	if f == nil {
		return nil
	}
	f.saveMu.Lock()
	defer f.saveMu.Unlock()
	b, err := f.encode()
	if err != nil {
		return fmt.Errorf("encode %s state: %w", f.name, err)
	}
	tf, err := os.CreateTemp(filepath.Dir(f.path), "."+filepath.Base(f.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s state: %w", f.name, err)
	}
	tmp := tf.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := tf.Write(b); err != nil {
		tf.Close()
		return fmt.Errorf("write %s state %s: %w", f.name, tmp, err)
	}
	if err := tf.Sync(); err != nil {
		tf.Close()
		return fmt.Errorf("sync %s state %s: %w", f.name, tmp, err)
	}
	if err := tf.Close(); err != nil {
		return fmt.Errorf("close %s state %s: %w", f.name, tmp, err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("replace %s state: %w", f.name, err)
	}
	return nil
}
