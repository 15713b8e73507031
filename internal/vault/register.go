package vault

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/custos/custos"
)

// Register stores subject s with a fresh data key unless a subject with its
// id exists, and returns the subject as stored and whether Register created
// it.
//
// Register closes a race with a rotation run by another process: a key
// wrapped under the old KEK just before the rotation began, but stored after
// the rotation's walks passed its id, would be lost when the old KEK is
// destroyed. So after storing the subject, Register asks the Keyring for its
// current KEK and, if it changed, rewraps the key it still holds under the
// new one. Prefer it to NewKey followed by Store.CreateSubject.
func (v *Vault) Register(ctx context.Context, st custos.Store, s custos.Subject) (custos.StoredSubject, bool, error) {
	if s.Residency != v.jurisdiction {
		return custos.StoredSubject{}, false, custos.Errorf(custos.CodeWrongJurisdiction, "subject resides in another jurisdiction")
	}
	if s.ID == "" {
		return custos.StoredSubject{}, false, errors.New("couldn't register subject: empty id")
	}
	dek := make([]byte, 32)
	rand.Read(dek)
	defer clear(dek)
	aad := keyAAD(v.jurisdiction, s.ID)
	w, err := v.k.Wrap(ctx, dek, aad)
	if err != nil {
		return custos.StoredSubject{}, false, fmt.Errorf("couldn't wrap data key: %w", err)
	}
	ss := custos.StoredSubject{Subject: s, Key: w, CreatedAt: time.Now().UTC()}
	created, err := st.CreateSubject(ctx, ss)
	if err != nil {
		return custos.StoredSubject{}, false, fmt.Errorf("couldn't store subject: %w", err)
	}
	if !created {
		ss, err = st.Subject(ctx, s.ID)
		if err != nil {
			return custos.StoredSubject{}, false, fmt.Errorf("couldn't read subject: %w", err)
		}
		return ss, false, nil
	}
	const attempts = 5
	for range attempts {
		cur := v.k.Current()
		if ss.Key.KEKID == cur {
			return ss, true, nil
		}
		next, err := v.k.Wrap(ctx, dek, aad)
		if err != nil {
			return ss, true, fmt.Errorf("couldn't rewrap data key of a new subject: %w", err)
		}
		ok, err := st.RewrapKey(ctx, s.ID, ss.Key, next)
		switch {
		case errors.Is(err, custos.ErrNotFound):
			return ss, true, nil // erased meanwhile
		case err != nil:
			return ss, true, fmt.Errorf("couldn't rewrap data key of a new subject: %w", err)
		case ok:
			ss.Key = next
			continue
		}
		if ss, err = st.Subject(ctx, s.ID); errors.Is(err, custos.ErrNotFound) {
			return ss, true, nil
		} else if err != nil {
			return ss, true, fmt.Errorf("couldn't read subject: %w", err)
		}
	}
	return ss, true, fmt.Errorf("couldn't rewrap data key of a new subject: keys rotated %d times meanwhile", attempts)
}
