package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"

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
	NewKEK    string   // the KEK every data key and token ref is now under
	Destroyed []string // the KEKs destroyed
	Rewrapped int      // data keys rewrapped, over every walk
	Reindexed int      // token refs indexed again, over every walk
	Subjects  int      // subjects seen by the final walk
}

// rotatePage is the number of subjects Rotate reads at a time.
const rotatePage = 500

// maxWalks bounds the walks Rotate makes before it gives up on a store in
// which keys or token refs keep appearing under old KEKs.
const maxWalks = 5

// RotationPrincipal is the principal named in the reason of every unwrap
// Rotate makes.
const RotationPrincipal = "custos-rotation"

// Rotate rewraps every subject's data key and indexes every token ref
// again under a new KEK, and destroys the old KEKs, without touching
// records:
//
//  1. it adds a new current KEK to k;
//  2. it walks st's subjects in pages of 500. For each subject whose key or
//     any of whose token refs is not under the new KEK, it unwraps the key
//     once; a key not under the new KEK it stores rewrapped with RewrapKey,
//     a compare-and-swap (on a lost swap it reads the subject again and
//     retries; a subject erased meanwhile is skipped); for each ref not
//     under the new KEK it opens the token the ref seals under the data
//     key, indexes it under the new KEK and stores the index with
//     ReindexTokenRef, a compare-and-swap (a ref replaced or erased
//     meanwhile is skipped, one changed meanwhile is left to the next walk);
//  3. it walks again until a walk finds every key and every ref under the
//     new KEK, so that what other processes stored under an old KEK while
//     the first walk ran is moved too;
//  4. it destroys every KEK but the new one, and with them their token
//     index keys.
//
// Old KEKs are destroyed only once every key and every ref is confirmed
// under the new one, so a crash or an error at any point leaves every key
// unwrappable and every token ref findable, and running Rotate again
// completes the rotation. A key that does not unwrap stops Rotate with an
// error before anything is destroyed; so do token refs that still do not
// open under their subject's data key after the last walk.
//
// Erasure is final on copies of the store (backups, replicas) once Rotate
// returns: a subject deleted before it started has its wrapped key and its
// token refs only in those copies, under a KEK now destroyed, so that the
// key no longer unwraps and no token can be matched to its refs' indexes.
//
// A writer that indexed refs under the old KEK before step 1 but stores
// them after the final walk passed their subject leaves them under a
// destroyed KEK, where lookups do not find them, until it calls
// Vault.RefreshTokenRefs or the next rotation indexes them again: that
// needs only the subject's data key, not the old KEK.
//
// progress, if not nil, is called after every page with the number of keys
// rewrapped so far and of subjects seen so far by the current walk.
//
// Errors name no subject: a subject is named by its position in the walk.
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
			if r.unopened > 0 {
				return r.report, fmt.Errorf("couldn't rotate to %s: %d token refs do not open under their subject's data key", id, r.unopened)
			}
			return r.report, fmt.Errorf("couldn't rotate to %s: keys or token refs still appear under old KEKs after %d walks", id, maxWalks)
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
	unopened int // token refs of the current walk that did not open
}

// walk visits every subject once, moving its key and refs to the new KEK,
// and returns how many keys and refs it found under an old KEK.
func (r *rotation) walk(ctx context.Context) (stale int, err error) {
	seen, after := 0, ""
	r.unopened = 0
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
			n, err := r.visit(ctx, s)
			stale += n
			if err != nil {
				return stale, fmt.Errorf("subject %d of the walk: %w", seen, err)
			}
		}
		if r.progress != nil {
			r.progress(r.report.Rewrapped, seen)
		}
		after = page[len(page)-1].ID
	}
}

// visit moves s's key and token refs to the new KEK and returns how many of
// them it found under an old one.
func (r *rotation) visit(ctx context.Context, s custos.StoredSubject) (stale int, err error) {
	refs, err := r.st.SubjectTokenRefs(ctx, s.ID)
	if err != nil {
		return 0, fmt.Errorf("couldn't list token refs: %w", err)
	}
	refs = slices.DeleteFunc(refs, func(x custos.TokenRef) bool { return x.KEKID == r.kek })
	stale = len(refs)
	if s.Key.KEKID != r.kek {
		stale++
	}
	if stale == 0 {
		return 0, nil
	}
	key, err := r.rewrap(ctx, s, len(refs) > 0)
	if err != nil || key == nil {
		return stale, err
	}
	for _, x := range refs {
		if err := r.reindex(ctx, key, x); err != nil {
			return stale, err
		}
	}
	return stale, nil
}

// rewrap stores s's data key wrapped under the new KEK, unless s is erased
// or someone else did so first. It returns the key if withKey is set; nil
// when s is erased.
func (r *rotation) rewrap(ctx context.Context, s custos.StoredSubject, withKey bool) (*DataKey, error) {
	const attempts = 10
	aad := keyAAD(s.Residency, s.ID)
	reason := custos.KeyReason{Principal: RotationPrincipal, Subject: s.ID}
	for range attempts {
		dek, err := r.k.Unwrap(ctx, s.Key, aad, reason)
		if err != nil {
			return nil, fmt.Errorf("couldn't unwrap its key: %w", err)
		}
		var key *DataKey
		if withKey {
			key, err = newDataKey(dek, s.Residency, s.ID)
		}
		if err != nil || s.Key.KEKID == r.kek {
			clear(dek)
			return key, err
		}
		next, err := r.k.Wrap(ctx, dek, aad)
		clear(dek)
		if err != nil {
			return nil, fmt.Errorf("couldn't rewrap its key: %w", err)
		}
		if next.KEKID != r.kek {
			return nil, fmt.Errorf("keyring wraps under %s, not %s: is another rotation running?", next.KEKID, r.kek)
		}
		ok, err := r.st.RewrapKey(ctx, s.ID, s.Key, next)
		if errors.Is(err, custos.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("couldn't store its key: %w", err)
		}
		if ok {
			r.report.Rewrapped++
			return key, nil
		}
		s, err = r.st.Subject(ctx, s.ID)
		if errors.Is(err, custos.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("couldn't read it again: %w", err)
		}
	}
	return nil, fmt.Errorf("couldn't rewrap its key: it changed %d times meanwhile", attempts)
}

// reindex stores ref's index under the new KEK, unless it was replaced,
// erased or changed meanwhile. A ref that does not open under key is
// counted in r.unopened and left for the next walk, which reads the
// subject's key and refs afresh (they may have been read on either side of
// an erasure and a new registration of the same id).
func (r *rotation) reindex(ctx context.Context, key *DataKey, ref custos.TokenRef) error {
	token, err := key.OpenTokenRef(ref)
	if err != nil {
		r.unopened++
		return nil
	}
	index, err := r.k.TokenIndex(ctx, r.kek, []byte(token))
	if err != nil {
		return fmt.Errorf("couldn't index a token ref: %w", err)
	}
	ok, err := r.st.ReindexTokenRef(ctx, ref, index, r.kek)
	switch {
	case errors.Is(err, custos.ErrNotFound):
	case err != nil:
		return fmt.Errorf("couldn't store a token ref: %w", err)
	case ok:
		r.report.Reindexed++
	}
	return nil
}
