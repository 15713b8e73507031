package vault

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"sync"

	"github.com/custos/custos"
)

// memStore is a custos.Store in memory, for tests. It copies what it is
// given and what it returns, so that callers cannot change it behind its
// back.
type memStore struct {
	mu       sync.Mutex
	subjects map[string]custos.StoredSubject
	records  map[string]custos.SealedRecord // by collection + "\x00" + id
	refs     map[string][]custos.TokenRef   // by token
	sorted   []string                       // subject ids in order; nil when stale

	// Test hooks, called with mu held.
	beforeRewrap   func(id string) error // a non-nil error fails RewrapKey
	beforeSubjects func(after string)
}

var _ custos.Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{
		subjects: make(map[string]custos.StoredSubject),
		records:  make(map[string]custos.SealedRecord),
		refs:     make(map[string][]custos.TokenRef),
	}
}

// backup returns a copy of the store as it is now.
func (m *memStore) backup() *memStore {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := newMemStore()
	for id, s := range m.subjects {
		b.subjects[id] = copySubject(s)
	}
	for k, r := range m.records {
		b.records[k] = copyRecord(r)
	}
	for k, v := range m.refs {
		b.refs[k] = slices.Clone(v)
	}
	return b
}

func copySubject(s custos.StoredSubject) custos.StoredSubject {
	s.Key.Ciphertext = bytes.Clone(s.Key.Ciphertext)
	return s
}

func copyRecord(r custos.SealedRecord) custos.SealedRecord {
	r.Clear, r.Sealed = bytes.Clone(r.Clear), bytes.Clone(r.Sealed)
	return r
}

func sameKey(a, b custos.WrappedKey) bool {
	return a.KEKID == b.KEKID && bytes.Equal(a.Ciphertext, b.Ciphertext)
}

func (m *memStore) Location() string { return "memory" }

func (m *memStore) CreateSubject(ctx context.Context, s custos.StoredSubject) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.subjects[s.ID]; ok {
		return false, nil
	}
	m.subjects[s.ID] = copySubject(s)
	m.sorted = nil
	return true, nil
}

func (m *memStore) Subject(ctx context.Context, id string) (custos.StoredSubject, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.subjects[id]
	if !ok {
		return custos.StoredSubject{}, custos.ErrNotFound
	}
	return copySubject(s), nil
}

func (m *memStore) PutRecord(ctx context.Context, r custos.SealedRecord, refs []custos.TokenRef) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.subjects[r.Subject]; !ok {
		return false, custos.ErrNotFound
	}
	key := r.Collection + "\x00" + r.ID
	old, exists := m.records[key]
	if exists && old.Subject != r.Subject {
		return false, custos.ErrConflict
	}
	m.dropRefs(func(ref custos.TokenRef) bool { return ref.Collection == r.Collection && ref.Record == r.ID })
	for _, ref := range refs {
		m.refs[ref.Token] = append(m.refs[ref.Token], ref)
	}
	m.records[key] = copyRecord(r)
	return !exists, nil
}

func (m *memStore) dropRefs(drop func(custos.TokenRef) bool) {
	for tok, refs := range m.refs {
		refs = slices.DeleteFunc(refs, drop)
		if len(refs) == 0 {
			delete(m.refs, tok)
		} else {
			m.refs[tok] = refs
		}
	}
}

func (m *memStore) Record(ctx context.Context, collection, id string) (custos.SealedRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[collection+"\x00"+id]
	if !ok {
		return custos.SealedRecord{}, custos.ErrNotFound
	}
	return copyRecord(r), nil
}

func (m *memStore) DeleteSubject(ctx context.Context, id string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.subjects[id]; !ok {
		return 0, custos.ErrNotFound
	}
	n := 0
	maps.DeleteFunc(m.records, func(_ string, r custos.SealedRecord) bool {
		if r.Subject == id {
			n++
			return true
		}
		return false
	})
	m.dropRefs(func(ref custos.TokenRef) bool { return ref.Subject == id })
	delete(m.subjects, id)
	m.sorted = nil
	return n, nil
}

func (m *memStore) TokenRefs(ctx context.Context, token string) ([]custos.TokenRef, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.refs[token]), nil
}

func (m *memStore) Subjects(ctx context.Context, after string, limit int) ([]custos.StoredSubject, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.beforeSubjects != nil {
		m.beforeSubjects(after)
	}
	if m.sorted == nil || len(m.sorted) != len(m.subjects) { // test hooks write m.subjects directly
		m.sorted = slices.Sorted(maps.Keys(m.subjects))
	}
	i, found := slices.BinarySearch(m.sorted, after)
	if found {
		i++
	}
	ids := m.sorted[i:]
	if len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]custos.StoredSubject, len(ids))
	for i, id := range ids {
		out[i] = copySubject(m.subjects[id])
	}
	return out, nil
}

func (m *memStore) RewrapKey(ctx context.Context, id string, old, next custos.WrappedKey) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.beforeRewrap != nil {
		if err := m.beforeRewrap(id); err != nil {
			return false, err
		}
	}
	s, ok := m.subjects[id]
	if !ok {
		return false, custos.ErrNotFound
	}
	if !sameKey(s.Key, old) {
		return false, nil
	}
	s.Key = custos.WrappedKey{KEKID: next.KEKID, Ciphertext: bytes.Clone(next.Ciphertext)}
	m.subjects[id] = s
	return true, nil
}

func (m *memStore) Close() error { return nil }

var errInjected = errors.New("injected store failure")
