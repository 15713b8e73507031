//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package keys

import "context"

// lockFile does nothing on this platform: changes to a keyring from several
// processes at once are not serialised, so run one `custos keys` command at
// a time. Changes within one process are serialised by Local's mutex.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	return func() {}, ctx.Err()
}
