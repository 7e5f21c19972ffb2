package simkit

import (
	"context"
	"sync"
)

// Changes wakes goroutines waiting for a condition over state that other
// goroutines change (a delivery recorded, a job finished). It is guarded by
// the same lock as that state; the zero value is ready to use.
type Changes struct {
	ch chan struct{} // closed and replaced on each Broadcast
}

func (c *Changes) chanLocked() chan struct{} {
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

// Broadcast wakes every current waiter. The caller holds the lock.
func (c *Changes) Broadcast() {
	if c.ch != nil {
		close(c.ch)
	}
	c.ch = make(chan struct{})
}

// Await calls cond with mu held, first at once and then after each
// Broadcast, until it reports true (Await returns nil) or ctx ends (Await
// returns ctx.Err()). cond records what the caller needs in variables it
// captures.
func (c *Changes) Await(ctx context.Context, mu *sync.Mutex, cond func() bool) error {
	for {
		mu.Lock()
		done, ch := cond(), c.chanLocked()
		mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}
