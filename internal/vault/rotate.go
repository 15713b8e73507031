package vault

import (
	"context"
	"errors"
	"fmt"

	"github.com/custos/custos"
)

// RotatingKeyring is a Keyring whose KEKs can be rotated.
type RotatingKeyring interface {
	custos.Keyring

	// AddKEK adds a fresh KEK, makes it current and returns its id. The
	// change is durable, and seen by every process sharing the keyring, when
	// AddKEK returns.
	AddKEK(ctx context.Context) (string, error)

	// DestroyKEKs destroys every KEK but keep, which must be current, and
	// returns the ids destroyed. Keys wrapped under them never unwrap again.
	DestroyKEKs(ctx context.Context, keep string) ([]string, error)
}

// RotateReport says what Rotate did.
type RotateReport struct {
	NewKEK    string   // the KEK every data key is now wrapped under
	Destroyed []string // the KEKs destroyed
	Rewrapped int      // data keys rewrapped, over every walk
	Subjects  int      // subjects seen by the final walk
}

// rotatePage is the number of subjects Rotate reads at a time.
const rotatePage = 500

// maxWalks bounds the walks Rotate makes before it gives up on a store in
// which subjects keep appearing under old KEKs.
const maxWalks = 5

// RotationPrincipal is the principal named in the reason of every unwrap
// Rotate makes.
const RotationPrincipal = "custos-rotation"

// Rotate rewraps every subject's data key under a new KEK and destroys the
// old KEKs, without touching records:
//
//  1. it adds a new current KEK to k;
//  2. it walks st's subjects in pages of 500, unwrapping each key not under
//     the new KEK and storing it rewrapped with RewrapKey, a compare-and-swap
//     (on a lost swap it reads the subject again and retries; a subject erased
//     meanwhile is skipped);
//  3. it walks again until a walk finds every subject under the new KEK, so
//     that keys wrapped under an old KEK by other processes while the first
//     walk ran are rewrapped too;
//  4. it destroys every KEK but the new one.
//
// Old KEKs are destroyed only once every key is confirmed under the new one,
// so a crash or an error at any point leaves every key unwrappable, and
// running Rotate again completes the rotation. A key that does not unwrap
// stops Rotate with an error before anything is destroyed.
//
// Erasure is final on copies of the store (backups, replicas) once Rotate
// returns: a subject deleted before it started has its wrapped key only in
// those copies, under a KEK now destroyed.
//
// progress, if not nil, is called after every page with the number of keys
// rewrapped so far and of subjects seen so far by the current walk.
//
// Rotate assumes every stored subject resides in the keyring's jurisdiction
// (their keys are bound to it), and that no other Rotate runs at the same
// time on the same keyring: the second would destroy the first's new KEK.
// A concurrent Rotate is detected when Wrap returns another KEK than the one
// this Rotate added, and stops it.
func Rotate(ctx context.Context, st custos.Store, k RotatingKeyring, progress func(rewrapped, seen int)) (RotateReport, error) {
	id, err := k.AddKEK(ctx)
	if err != nil {
		return RotateReport{}, fmt.Errorf("couldn't rotate: %w", err)
	}
	r := &rotation{st: st, k: k, kek: id, progress: progress, report: RotateReport{NewKEK: id}}
	for walks := 0; ; walks++ {
		if walks == maxWalks {
			return r.report, fmt.Errorf("couldn't rotate to %s: subjects still appear under old keys after %d walks", id, maxWalks)
		}
		stale, err := r.walk(ctx)
		if err != nil {
			return r.report, fmt.Errorf("couldn't rotate to %s: %w", id, err)
		}
		if stale == 0 {
			break
		}
	}
	destroyed, err := k.DestroyKEKs(ctx, id)
	if err != nil {
		return r.report, fmt.Errorf("couldn't rotate to %s: %w", id, err)
	}
	r.report.Destroyed = destroyed
	return r.report, nil
}

type rotation struct {
	st       custos.Store
	k        RotatingKeyring
	kek      string
	progress func(rewrapped, seen int)
	report   RotateReport
}

// walk visits every subject once, rewrapping keys not under the new KEK,
// and returns how many such keys it found.
func (r *rotation) walk(ctx context.Context) (stale int, err error) {
	seen, after := 0, ""
	for {
		page, err := r.st.Subjects(ctx, after, rotatePage)
		if err != nil {
			return stale, fmt.Errorf("couldn't list subjects: %w", err)
		}
		if len(page) == 0 {
			r.report.Subjects = seen
			return stale, nil
		}
		for _, s := range page {
			seen++
			if s.Key.KEKID == r.kek {
				continue
			}
			stale++
			if err := r.rewrap(ctx, s); err != nil {
				return stale, err
			}
		}
		if r.progress != nil {
			r.progress(r.report.Rewrapped, seen)
		}
		after = page[len(page)-1].ID
	}
}

// rewrap stores s's data key wrapped under the new KEK, unless s is erased
// or someone else did so first.
func (r *rotation) rewrap(ctx context.Context, s custos.StoredSubject) error {
	const attempts = 10
	aad := keyAAD(s.Residency, s.ID)
	reason := custos.KeyReason{Principal: RotationPrincipal, Subject: s.ID}
	for range attempts {
		dek, err := r.k.Unwrap(ctx, s.Key, aad, reason)
		if err != nil {
			return fmt.Errorf("couldn't unwrap the key of subject %s: %w", s.ID, err)
		}
		next, err := r.k.Wrap(ctx, dek, aad)
		clear(dek)
		if err != nil {
			return fmt.Errorf("couldn't rewrap the key of subject %s: %w", s.ID, err)
		}
		if next.KEKID != r.kek {
			return fmt.Errorf("keyring wraps under %s, not %s: is another rotation running?", next.KEKID, r.kek)
		}
		ok, err := r.st.RewrapKey(ctx, s.ID, s.Key, next)
		if errors.Is(err, custos.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("couldn't store the key of subject %s: %w", s.ID, err)
		}
		if ok {
			r.report.Rewrapped++
			return nil
		}
		s, err = r.st.Subject(ctx, s.ID)
		if errors.Is(err, custos.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("couldn't read subject %s: %w", s.ID, err)
		}
		if s.Key.KEKID == r.kek {
			return nil
		}
	}
	return fmt.Errorf("couldn't rewrap the key of subject %s: it changed %d times meanwhile", s.ID, attempts)
}
