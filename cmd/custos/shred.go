package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/config"
	"github.com/custos/custos/internal/keys"
	"github.com/custos/custos/internal/safefile"
	"github.com/custos/custos/internal/vault"
)

// shredder makes erasures final on old copies of the store: within
// erasure.shred_after of an erasure it rotates the KEK, destroying the one
// that wrapped the erased subject's data key. Each erasure leaves a marker
// file in a directory next to the keyring before its deletion; a rotation
// removes the markers it saw only once the old KEKs are destroyed, so a
// crash at any point leaves the rotation pending. A keyring holding more
// than one KEK is a rotation interrupted: it is due at once.
type shredder struct {
	after   time.Duration
	pending string
	store   custos.Store
	keyring *keys.Local
	audit   custos.Auditor
	log     *slog.Logger

	kick    chan struct{}
	stopped context.Context // done once Stop is called
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

func newShredder(cfg *config.Config, st custos.Store, kr *keys.Local, audit custos.Auditor, log *slog.Logger) *shredder {
	stopped, stop := context.WithCancel(context.Background())
	return &shredder{
		after:   time.Duration(cfg.Erasure.ShredAfter),
		pending: cfg.Path(cfg.Keyring) + ".shred-pending",
		store:   st,
		keyring: kr,
		audit:   audit,
		log:     log,
		kick:    make(chan struct{}, 1),
		stopped: stopped,
		stop:    stop,
	}
}

// Erased notes an erasure about to happen: a rotation is due within the
// delay. The note is durable when Erased returns nil.
func (s *shredder) Erased() error {
	if err := os.MkdirAll(s.pending, 0o700); err != nil {
		return err
	}
	var b [8]byte
	rand.Read(b[:])
	name := filepath.Join(s.pending, fmt.Sprintf("%d-%x", time.Now().UnixNano(), b))
	if err := safefile.Create(name, nil, 0o600); err != nil {
		return err
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// markers returns the pending markers and when the oldest was made.
func (s *shredder) markers() ([]string, time.Time) {
	entries, _ := os.ReadDir(s.pending)
	var names []string
	var oldest time.Time
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		names = append(names, filepath.Join(s.pending, e.Name()))
		if oldest.IsZero() || info.ModTime().Before(oldest) {
			oldest = info.ModTime()
		}
	}
	return names, oldest
}

// due returns when the next rotation is due, if one is.
func (s *shredder) due() (time.Time, bool) {
	if len(s.keyring.KEKs()) > 1 {
		return time.Now(), true
	}
	names, oldest := s.markers()
	if len(names) == 0 {
		return time.Time{}, false
	}
	return oldest.Add(s.after), true
}

// Start runs pending and future rotations until Stop.
func (s *shredder) Start() {
	s.wg.Go(func() {
		for {
			var due <-chan time.Time // nil, never ready, while nothing is due
			if at, ok := s.due(); ok {
				due = time.After(max(time.Until(at), 0))
			}
			select {
			case <-s.stopped.Done():
				return
			case <-s.kick:
				continue
			case <-due:
			}
			if err := s.rotate(s.stopped); err != nil {
				s.log.Error("key rotation after erasure failed; retrying in a minute", "err", err)
				select {
				case <-s.stopped.Done():
					return
				case <-time.After(time.Minute):
				}
			}
		}
	})
}

// rotate rotates the KEK, abandoning the rotation when ctx ends.
func (s *shredder) rotate(ctx context.Context) error {
	// Only the markers seen now are covered: an erasure noted during the
	// rotation may have its key re-wrapped under the new KEK, and waits for
	// the next one.
	seen, _ := s.markers()
	rep, err := vault.Rotate(ctx, s.store, s.keyring, nil)
	if err != nil {
		return err
	}
	for _, m := range seen {
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	recordRotation(ctx, s.audit, s.log, rep)
	s.log.Info("key rotated after erasure", "kek", rep.NewKEK, "destroyed", rep.Destroyed, "subjects", rep.Subjects)
	return nil
}

// recordRotation puts a rotation on the audit log. The keys are already
// destroyed: a failure to record is logged loudly, and cannot be undone.
func recordRotation(ctx context.Context, audit custos.Auditor, log *slog.Logger, rep vault.RotateReport) {
	e := custos.AuditEntry{
		Time: time.Now().UTC(), Action: "rotate", Decision: "allow", Principal: vault.RotationPrincipal, Count: rep.Rewrapped,
		Detail: fmt.Sprintf("new kek %s destroyed %s reindexed %d", rep.NewKEK, strings.Join(rep.Destroyed, " "), rep.Reindexed),
	}
	// The keys are destroyed already: record even if the caller is stopping.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := audit.Record(ctx, e); err != nil {
		log.Error("key rotation not recorded in the audit log", "kek", rep.NewKEK, "err", err)
	}
}

// Stop ends the shredder and waits for a running rotation to stop.
func (s *shredder) Stop() {
	s.stop()
	s.wg.Wait()
}
