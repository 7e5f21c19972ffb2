//go:build unix

package nodedeps

import (
	"fmt"
	"os"
	"syscall"
)

// ConcurrentInstalls says Install may run in two processes at once (they
// take turns on a lock file).
const ConcurrentInstalls = true

// lock takes an exclusive lock on path (created if missing), waiting for
// another process's; the lock ends with the returned func or the process.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
