package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/custos/custos"
)

// IndexToken returns the index of token under the Keyring's current KEK,
// and that KEK's id: what a custos.TokenRef stored now carries.
func (v *Vault) IndexToken(ctx context.Context, token string) (kekID string, index []byte, err error) {
	for attempt := 0; ; attempt++ {
		kekID = v.k.Current()
		index, err = v.k.TokenIndex(ctx, kekID, []byte(token))
		if errors.Is(err, custos.ErrKeyDestroyed) && attempt == 0 {
			continue // rotated between Current and TokenIndex: the current KEK is newer
		}
		if err != nil {
			return "", nil, fmt.Errorf("couldn't index token: %w", err)
		}
		return kekID, index, nil
	}
}

// TokenIndexes returns the indexes of token under every KEK the Keyring
// holds, the current one first: one normally, two or more while a rotation
// runs, when a ref may be indexed under the old KEK or the new one.
func (v *Vault) TokenIndexes(ctx context.Context, token string) ([][]byte, error) {
	ids := v.k.KEKs()
	out := make([][]byte, 0, len(ids))
	for _, id := range ids {
		index, err := v.k.TokenIndex(ctx, id, []byte(token))
		if errors.Is(err, custos.ErrKeyDestroyed) {
			continue // destroyed since KEKs: no ref is left under it
		}
		if err != nil {
			return nil, fmt.Errorf("couldn't index token: %w", err)
		}
		out = append(out, index)
	}
	return out, nil
}

// FindTokenRefs returns the refs st holds for token, looked up by its
// indexes under every KEK held. A rotation that began during the lookup
// may have moved a ref to an index under a KEK the lookup did not know
// yet: when none is found and the current KEK changed meanwhile, FindTokenRefs
// looks again.
func (v *Vault) FindTokenRefs(ctx context.Context, st custos.Store, token string) ([]custos.TokenRef, error) {
	const attempts = 3
	var refs []custos.TokenRef
	for range attempts {
		current := v.k.Current()
		indexes, err := v.TokenIndexes(ctx, token)
		if err != nil {
			return nil, err
		}
		refs = refs[:0]
		for len(indexes) > 0 {
			n := min(len(indexes), custos.MaxTokenIndexes)
			found, err := st.TokenRefs(ctx, indexes[:n])
			if err != nil {
				return nil, fmt.Errorf("couldn't look up token: %w", err)
			}
			refs = append(refs, found...)
			indexes = indexes[n:]
		}
		if len(refs) > 0 || v.k.Current() == current {
			break
		}
	}
	return refs, nil
}

// RefreshTokenRefs indexes again, under the current KEK, those of refs that
// are under another one, as Rotate does; key is the data key of their
// subject. A writer calls it after storing refs with PutRecord, to close the
// race with a rotation run by another process: refs indexed under the old
// KEK just before the rotation began, but stored after its walks passed
// their subject, would otherwise be found only once the next rotation
// indexes them again. A ref replaced or erased meanwhile is skipped.
func (v *Vault) RefreshTokenRefs(ctx context.Context, st custos.Store, key *DataKey, refs []custos.TokenRef) error {
	const attempts = 5
	refs = slices.Clone(refs)
	for range attempts {
		current := v.k.Current()
		stale := 0
		for i := 0; i < len(refs); i++ {
			x := &refs[i]
			if x.KEKID == current {
				continue
			}
			stale++
			token, err := key.OpenTokenRef(*x)
			if err != nil {
				return err
			}
			index, err := v.k.TokenIndex(ctx, current, []byte(token))
			if err != nil {
				return fmt.Errorf("couldn't index token ref: %w", err)
			}
			ok, err := st.ReindexTokenRef(ctx, *x, index, current)
			switch {
			case err != nil && !errors.Is(err, custos.ErrNotFound):
				return fmt.Errorf("couldn't index token ref: %w", err)
			case ok:
				x.Index, x.KEKID = index, current
			default:
				// Replaced, erased or moved by a rotation meanwhile: no
				// longer this writer's to move.
				refs = slices.Delete(refs, i, i+1)
				i--
			}
		}
		if stale == 0 || v.k.Current() == current {
			return nil
		}
	}
	return fmt.Errorf("couldn't index token refs: keys rotated %d times meanwhile", attempts)
}

// tokenRefVersion is the first byte of every sealed token.
const tokenRefVersion = 1

// SealTokenRef seals token, the token ref is for, as 0x01 || nonce ||
// ciphertext || tag, bound to the jurisdiction, the subject and ref's
// audience, collection, record and field. ref must be of the key's subject.
func (k *DataKey) SealTokenRef(ref custos.TokenRef, token string) ([]byte, error) {
	if ref.Subject != k.subject {
		return nil, errors.New("couldn't seal token ref: it is of another subject")
	}
	return k.seal(tokenRefVersion, []byte(token), k.tokenRefAAD(ref)), nil
}

// OpenTokenRef returns the token ref.Sealed holds. Any change to it, or a
// ref of another audience, collection, record, field, subject or
// jurisdiction, makes it fail.
func (k *DataKey) OpenTokenRef(ref custos.TokenRef) (string, error) {
	p, err := k.open("token ref", tokenRefVersion, ref.Sealed, k.tokenRefAAD(ref))
	if err != nil {
		return "", err
	}
	return string(p), nil
}

// tokenRefAAD is "custos-token-ref-v1" || 0 || version || the
// jurisdiction, subject, audience, collection, record and field, each
// length-prefixed. The subject is the key's: a ref of another subject does
// not open.
func (k *DataKey) tokenRefAAD(ref custos.TokenRef) []byte {
	b := make([]byte, 0, 64+len(k.jurisdiction)+len(k.subject)+len(ref.Audience)+len(ref.Collection)+len(ref.Record)+len(ref.Field))
	b = append(b, "custos-token-ref-v1\x00"...)
	b = append(b, tokenRefVersion)
	return appendFields(b, k.jurisdiction, k.subject, ref.Audience, ref.Collection, ref.Record, ref.Field)
}
