package vault

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
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
	refs     map[string][]custos.TokenRef   // by subject
	indexed  map[string]map[string]bool     // subjects that had a ref of an index; may be stale
	sorted   []string                       // subject ids in order; nil when stale

	// Test hooks, called with mu held.
	beforeRewrap   func(id string) error           // a non-nil error fails RewrapKey
	beforeReindex  func(ref custos.TokenRef) error // a non-nil error fails ReindexTokenRef
	beforeSubjects func(after string)
}

var _ custos.Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{
		subjects: make(map[string]custos.StoredSubject),
		records:  make(map[string]custos.SealedRecord),
		refs:     make(map[string][]custos.TokenRef),
		indexed:  make(map[string]map[string]bool),
	}
}

// indexRef notes that subject may have a ref under index.
func (m *memStore) indexRef(index []byte, subject string) {
	subjects := m.indexed[string(index)]
	if subjects == nil {
		subjects = make(map[string]bool)
		m.indexed[string(index)] = subjects
	}
	subjects[subject] = true
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
	for id, refs := range m.refs {
		b.refs[id] = copyRefs(refs)
		for _, x := range refs {
			b.indexRef(x.Index, id)
		}
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

func copyRef(x custos.TokenRef) custos.TokenRef {
	x.Index, x.Sealed = bytes.Clone(x.Index), bytes.Clone(x.Sealed)
	return x
}

func copyRefs(refs []custos.TokenRef) []custos.TokenRef {
	out := make([]custos.TokenRef, len(refs))
	for i, x := range refs {
		out[i] = copyRef(x)
	}
	return out
}

// sameField reports whether a and b are refs of the same audience and
// field of the same record.
func sameField(a, b custos.TokenRef) bool {
	return a.Audience == b.Audience && a.Subject == b.Subject && a.Collection == b.Collection &&
		a.Record == b.Record && a.Field == b.Field
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
	m.refs[r.Subject] = append(slices.DeleteFunc(m.refs[r.Subject], func(x custos.TokenRef) bool {
		return x.Collection == r.Collection && x.Record == r.ID
	}), copyRefs(refs)...)
	for _, x := range refs {
		m.indexRef(x.Index, x.Subject)
	}
	m.records[key] = copyRecord(r)
	return !exists, nil
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
	delete(m.refs, id)
	delete(m.subjects, id)
	m.sorted = nil
	return n, nil
}

func (m *memStore) TokenRefs(ctx context.Context, indexes [][]byte) ([]custos.TokenRef, error) {
	if len(indexes) > custos.MaxTokenIndexes {
		return nil, errors.New("too many indexes")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	subjects := make(map[string]bool)
	for _, i := range indexes {
		maps.Copy(subjects, m.indexed[string(i)])
	}
	var out []custos.TokenRef
	for id := range subjects {
		for _, x := range m.refs[id] {
			if slices.ContainsFunc(indexes, func(i []byte) bool { return bytes.Equal(i, x.Index) }) {
				out = append(out, copyRef(x))
			}
		}
	}
	return out, nil
}

func (m *memStore) SubjectTokenRefs(ctx context.Context, subject string) ([]custos.TokenRef, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copyRefs(m.refs[subject]), nil
}

func (m *memStore) ReindexTokenRef(ctx context.Context, ref custos.TokenRef, newIndex []byte, newKEK string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.beforeReindex != nil {
		if err := m.beforeReindex(ref); err != nil {
			return false, err
		}
	}
	refs := m.refs[ref.Subject]
	i := slices.IndexFunc(refs, func(x custos.TokenRef) bool { return sameField(x, ref) })
	if i < 0 {
		return false, custos.ErrNotFound
	}
	x := &refs[i]
	if x.KEKID != ref.KEKID || !bytes.Equal(x.Index, ref.Index) {
		return false, nil
	}
	x.Index, x.KEKID = bytes.Clone(newIndex), newKEK
	m.indexRef(newIndex, ref.Subject)
	return true, nil
}

func (m *memStore) Records(ctx context.Context, collection, after string, limit int) ([]custos.SealedRecord, error) {
	return m.SubjectRecords(ctx, collection, "", after, limit)
}

// SubjectRecords returns every subject's records when subject is "".
func (m *memStore) SubjectRecords(ctx context.Context, collection, subject, after string, limit int) ([]custos.SealedRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []custos.SealedRecord
	for _, r := range m.records {
		if r.Collection == collection && r.ID > after && (subject == "" || r.Subject == subject) {
			out = append(out, copyRecord(r))
		}
	}
	slices.SortFunc(out, func(a, b custos.SealedRecord) int { return strings.Compare(a.ID, b.ID) })
	return out[:min(len(out), limit)], nil
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
