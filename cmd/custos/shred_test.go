package main

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/custos/custos/internal/config"
)

// TestShredderRotatesAfterErasure checks that an erasure is followed by a
// key rotation within shred_after, and that a pending rotation noted before
// a restart still happens after it.
func TestShredderRotatesAfterErasure(t *testing.T) {
	d := testDeployment(t)
	d.shredder.Stop()
	d.cfg.Erasure.ShredAfter = config.Duration(50 * time.Millisecond)
	kek0 := d.keyring.Current()

	s := newShredder(d.cfg, d.store, d.keyring, d.log, d.shredder.log)
	if err := s.Erased(); err != nil {
		t.Fatal(err)
	}
	if names, _ := s.markers(); len(names) != 1 {
		t.Fatalf("markers after an erasure: %v", names)
	}
	entries := d.log.Size()
	s.Start()
	defer s.Stop()
	// Done when the KEK in force at the erasure is destroyed.
	waitFor(t, func() bool { return !slices.Contains(d.keyring.KEKs(), kek0) })
	waitFor(t, func() bool { names, _ := s.markers(); return len(names) == 0 })
	s.Stop()
	if d.log.Size() != entries+1 {
		t.Fatal("the rotation was not recorded in the audit log")
	}

	// A marker left by a process that stopped before rotating.
	kek1 := d.keyring.Current()
	if err := s.Erased(); err != nil {
		t.Fatal(err)
	}
	s2 := newShredder(d.cfg, d.store, d.keyring, d.log, d.shredder.log)
	s2.Start()
	waitFor(t, func() bool { return !slices.Contains(d.keyring.KEKs(), kek1) })
	s2.Stop()

	// A rotation interrupted after its new KEK was added, markers gone or
	// not: a keyring holding two KEKs is due at once.
	kek2 := d.keyring.Current()
	if _, err := d.keyring.AddKEK(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.cfg.Erasure.ShredAfter = config.Duration(time.Hour)
	s3 := newShredder(d.cfg, d.store, d.keyring, d.log, d.shredder.log)
	s3.Start()
	defer s3.Stop()
	waitFor(t, func() bool { return !slices.Contains(d.keyring.KEKs(), kek2) && len(d.keyring.KEKs()) == 1 })
}

// TestEraseFailsWithoutMarker checks that Erased fails when it cannot
// write its marker; custody then erases nothing (TestEraseNeedsItsRotation
// in internal/custody).
func TestEraseFailsWithoutMarker(t *testing.T) {
	d := testDeployment(t)
	if err := os.WriteFile(d.shredder.pending, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.shredder.Erased(); err == nil {
		t.Fatal("Erased succeeded without a place for its marker")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met within 10s")
		case <-time.After(10 * time.Millisecond):
		}
	}
}
