//go:build !unix

package nodedeps

// ConcurrentInstalls is false: there is no lock here.
const ConcurrentInstalls = false

// lock does nothing where flock is missing: there, scripts/test does not
// install in the background, so the test is the only installer.
func lock(string) (func(), error) { return func() {}, nil }
