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

	s := newShredder(d.cfg, d.store, d.keyring, d.custody.Logger())
	s.Erased()
	if _, err := os.Stat(s.marker); err != nil {
		t.Fatalf("no marker after an erasure: %v", err)
	}
	s.Start()
	defer s.Stop()
	// Done when the KEK in force at the erasure is destroyed.
	waitFor(t, func() bool { return !slices.Contains(d.keyring.KEKs(), kek0) })
	if _, err := os.Stat(s.marker); !os.IsNotExist(err) {
		t.Fatalf("marker still there after the rotation: %v", err)
	}
	s.Stop()

	// A marker left by a process that stopped before rotating.
	kek1 := d.keyring.Current()
	if err := os.WriteFile(s.marker, []byte("pending\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := newShredder(d.cfg, d.store, d.keyring, d.custody.Logger())
	s2.Start()
	defer s2.Stop()
	waitFor(t, func() bool { return !slices.Contains(d.keyring.KEKs(), kek1) })
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
