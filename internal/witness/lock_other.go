//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package witness

import "os"

// lock does nothing where flock is not available: run one witness process
// per state directory there.
func lock(*os.File) error { return nil }
