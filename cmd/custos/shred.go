package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/config"
	"github.com/custos/custos/internal/keys"
	"github.com/custos/custos/internal/vault"
)

// shredder makes erasures final on old copies of the store: within
// erasure.shred_after of an erasure it rotates the KEK, destroying the one
// that wrapped the erased subject's data key. A marker file next to the
// keyring keeps the pending rotation across restarts.
type shredder struct {
	after   time.Duration
	marker  string
	store   custos.Store
	keyring *keys.Local
	log     *slog.Logger

	kick chan struct{}
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func newShredder(cfg *config.Config, st custos.Store, kr *keys.Local, log *slog.Logger) *shredder {
	return &shredder{
		after:   time.Duration(cfg.Erasure.ShredAfter),
		marker:  cfg.Path(cfg.Keyring) + ".shred-pending",
		store:   st,
		keyring: kr,
		log:     log,
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
}

// Erased notes an erasure: a rotation is due within the delay.
func (s *shredder) Erased() {
	f, err := os.OpenFile(s.marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = f.WriteString(time.Now().UTC().Format(time.RFC3339) + "\n")
		if err == nil {
			err = f.Sync()
		}
		f.Close()
	}
	if err != nil && !errors.Is(err, os.ErrExist) {
		s.log.Error("couldn't note pending key rotation; run `custos keys rotate` to make the erasure final on old copies", "err", err)
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// due returns when the pending rotation is due, if one is pending.
func (s *shredder) due() (time.Time, bool) {
	fi, err := os.Stat(s.marker)
	if err != nil {
		return time.Time{}, false
	}
	return fi.ModTime().Add(s.after), true
}

// Start runs pending and future rotations until Stop.
func (s *shredder) Start() {
	s.wg.Go(func() {
		for {
			wait := time.Duration(1<<63 - 1)
			if at, ok := s.due(); ok {
				wait = max(time.Until(at), 0)
			}
			t := time.NewTimer(wait)
			select {
			case <-s.stop:
				t.Stop()
				return
			case <-s.kick:
				t.Stop()
				continue
			case <-t.C:
			}
			if err := s.rotate(); err != nil {
				s.log.Error("key rotation after erasure failed; retrying in a minute", "err", err)
				select {
				case <-s.stop:
					return
				case <-time.After(time.Minute):
				}
			}
		}
	})
}

func (s *shredder) rotate() error {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer cancel()
	// Erasures noted from here on are covered by this rotation only if they
	// happened before it destroys the old KEK; removing the marker first
	// and letting a later erasure write a new one keeps none uncovered.
	if err := os.Remove(s.marker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	rep, err := vault.Rotate(ctx, s.store, s.keyring, nil)
	if err != nil {
		s.Erased() // still pending
		return err
	}
	s.log.Info("key rotated after erasure", "kek", rep.NewKEK, "destroyed", rep.Destroyed, "subjects", rep.Subjects)
	return nil
}

// Stop ends the shredder and waits for a running rotation to stop.
func (s *shredder) Stop() {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
}
