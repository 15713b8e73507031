// Package storetest is the conformance suite for implementations of
// custos.Store. Every implementation runs it, against a real database:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) custos.Store { ... })
//	}
//
// The suite checks the contract written on custos.Store: the sentinel errors,
// atomic replacement of token refs, atomic deletion of a subject with its
// records and refs, compare-and-swap of wrapped keys and of token ref
// indexes, lookups of refs by several indexes at once and by subject,
// paging in id order,
// exact round-trips of every field (nil and empty byte slices are distinct,
// times keep their microseconds), safety under concurrent use, and that ids
// are data, never SQL.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos/custos"
)

// Run runs the conformance suite. open must return a new, empty store each
// time it is called and close it when t ends; the suite may have closed it
// already by then.
func Run(t *testing.T, open func(t *testing.T) custos.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s custos.Store)
	}{
		{"CreateSubject", testCreateSubject},
		{"SubjectNotFound", testSubjectNotFound},
		{"PutRecordUnknownSubject", testPutRecordUnknownSubject},
		{"PutRecordReplace", testPutRecordReplace},
		{"PutRecordReplacesRefs", testPutRecordReplacesRefs},
		{"PutRecordForeignRefs", testPutRecordForeignRefs},
		{"PutRecordConflict", testPutRecordConflict},
		{"RecordRoundTrip", testRecordRoundTrip},
		{"RecordNotFound", testRecordNotFound},
		{"TokenRefs", testTokenRefs},
		{"TokenRefsManyIndexes", testTokenRefsManyIndexes},
		{"SubjectTokenRefs", testSubjectTokenRefs},
		{"ReindexTokenRef", testReindexTokenRef},
		{"DeleteSubject", testDeleteSubject},
		{"Subjects", testSubjects},
		{"Records", testRecords},
		{"RewrapKey", testRewrapKey},
		{"LargeValues", testLargeValues},
		{"OddIDs", testOddIDs},
		{"CancelledContext", testCancelledContext},
		{"Closed", testClosed},
		{"Concurrency", testConcurrency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f(t, open(t))
		})
	}
}

// when is a time with nanoseconds in a zone other than UTC, to check that
// stores keep microseconds and return UTC.
var when = time.Date(2026, time.March, 14, 15, 9, 26, 535897932, time.FixedZone("UTC-5", -5*3600))

func subject(id string) custos.StoredSubject {
	return custos.StoredSubject{
		Subject:   custos.Subject{ID: id, Residency: "US"},
		Key:       custos.WrappedKey{KEKID: "kek-1", Ciphertext: []byte("wrapped:" + id)},
		CreatedAt: when,
	}
}

func record(collection, id, subject string) custos.SealedRecord {
	return custos.SealedRecord{
		Collection: collection,
		ID:         id,
		Subject:    subject,
		Clear:      []byte(`{"handle":"` + id + `"}`),
		Sealed:     []byte("sealed:" + id),
		UpdatedAt:  when,
	}
}

// ref returns a ref of r's field for audience, indexed under kek-1 by
// index(token).
func ref(token, audience string, r custos.SealedRecord, field string) custos.TokenRef {
	return custos.TokenRef{
		Index:      index(token),
		KEKID:      "kek-1",
		Audience:   audience,
		Subject:    r.Subject,
		Collection: r.Collection,
		Record:     r.ID,
		Field:      field,
		Sealed:     []byte("\x01sealed\x00\xff:" + token),
	}
}

// index stands for the index of token: bytes that are not valid UTF-8 and
// hold a NUL, to check that stores keep them exactly.
func index(token string) []byte {
	return []byte("\x00idx\xff:" + token)
}

// storedSubject and storedRecord return what a store returns for v: its
// time in UTC, to the microsecond.
func storedSubject(v custos.StoredSubject) custos.StoredSubject {
	v.CreatedAt = v.CreatedAt.Truncate(time.Microsecond).UTC()
	return v
}

func storedRecord(v custos.SealedRecord) custos.SealedRecord {
	v.UpdatedAt = v.UpdatedAt.Truncate(time.Microsecond).UTC()
	return v
}

func createSubject(t testing.TB, s custos.Store, id string) custos.StoredSubject {
	t.Helper()
	sub := subject(id)
	created, err := s.CreateSubject(t.Context(), sub)
	if err != nil {
		t.Fatalf("CreateSubject(%q): %v", id, err)
	}
	if !created {
		t.Fatalf("CreateSubject(%q) = false, want true", id)
	}
	return sub
}

func putRecord(t testing.TB, s custos.Store, r custos.SealedRecord, refs ...custos.TokenRef) bool {
	t.Helper()
	created, err := s.PutRecord(t.Context(), r, refs)
	if err != nil {
		t.Fatalf("PutRecord(%q, %q): %v", r.Collection, r.ID, err)
	}
	return created
}

func checkSubject(t testing.TB, s custos.Store, want custos.StoredSubject) {
	t.Helper()
	got, err := s.Subject(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Subject(%q): %v", want.ID, err)
	}
	equalSubject(t, got, storedSubject(want))
}

func equalSubject(t testing.TB, got, want custos.StoredSubject) {
	t.Helper()
	if got.Subject != want.Subject || got.Key.KEKID != want.Key.KEKID ||
		!bytes.Equal(got.Key.Ciphertext, want.Key.Ciphertext) ||
		!got.CreatedAt.Equal(want.CreatedAt) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("subject %q = %+v, want %+v", want.ID, got, want)
	}
}

func checkRecord(t testing.TB, s custos.Store, want custos.SealedRecord) {
	t.Helper()
	got, err := s.Record(t.Context(), want.Collection, want.ID)
	if err != nil {
		t.Fatalf("Record(%q, %q): %v", want.Collection, want.ID, err)
	}
	equalRecord(t, got, storedRecord(want))
}

func equalRecord(t testing.TB, got, want custos.SealedRecord) {
	t.Helper()
	if got.Collection != want.Collection || got.ID != want.ID || got.Subject != want.Subject {
		t.Errorf("record = %q/%q of %q, want %q/%q of %q",
			got.Collection, got.ID, got.Subject, want.Collection, want.ID, want.Subject)
	}
	if !sameBytes(got.Clear, want.Clear) {
		t.Errorf("record %q/%q: Clear = %s, want %s", want.Collection, want.ID, show(got.Clear), show(want.Clear))
	}
	if !sameBytes(got.Sealed, want.Sealed) {
		t.Errorf("record %q/%q: Sealed = %s, want %s", want.Collection, want.ID, show(got.Sealed), show(want.Sealed))
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) || got.UpdatedAt.Location() != time.UTC {
		t.Errorf("record %q/%q: UpdatedAt = %v, want %v", want.Collection, want.ID, got.UpdatedAt, want.UpdatedAt)
	}
}

// sameBytes is bytes.Equal that tells nil from empty.
func sameBytes(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

func show(b []byte) string {
	switch {
	case b == nil:
		return "nil"
	case len(b) > 64:
		return fmt.Sprintf("%d bytes %q...", len(b), b[:64])
	}
	return fmt.Sprintf("%q", b)
}

// checkRefs checks the refs TokenRefs returns for the index of token.
func checkRefs(t testing.TB, s custos.Store, token string, want ...custos.TokenRef) {
	t.Helper()
	checkRefsOf(t, fmt.Sprintf("TokenRefs(index(%q))", token), tokenRefs(s, index(token)), want...)
}

// tokenRefs and subjectRefs list the refs of s by indexes and by subject.
func tokenRefs(s custos.Store, indexes ...[]byte) func(context.Context) ([]custos.TokenRef, error) {
	return func(ctx context.Context) ([]custos.TokenRef, error) { return s.TokenRefs(ctx, indexes) }
}

func subjectRefs(s custos.Store, subject string) func(context.Context) ([]custos.TokenRef, error) {
	return func(ctx context.Context) ([]custos.TokenRef, error) { return s.SubjectTokenRefs(ctx, subject) }
}

// checkRefsOf checks that list returns want, in any order.
func checkRefsOf(t testing.TB, what string, list func(context.Context) ([]custos.TokenRef, error), want ...custos.TokenRef) {
	t.Helper()
	got, err := list(t.Context())
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	cmp := func(a, b custos.TokenRef) int {
		return strings.Compare(showRef(a), showRef(b))
	}
	slices.SortFunc(got, cmp)
	want = slices.Clone(want)
	slices.SortFunc(want, cmp)
	if !slices.EqualFunc(got, want, sameRef) {
		t.Errorf("%s =\n%s\nwant\n%s", what, showRefs(got), showRefs(want))
	}
}

func sameRef(a, b custos.TokenRef) bool {
	return bytes.Equal(a.Index, b.Index) && a.KEKID == b.KEKID && a.Audience == b.Audience &&
		a.Subject == b.Subject && a.Collection == b.Collection && a.Record == b.Record &&
		a.Field == b.Field && bytes.Equal(a.Sealed, b.Sealed)
}

func showRef(x custos.TokenRef) string {
	return fmt.Sprintf("{%q %q %q %q %q %q %q %q}", x.Index, x.KEKID, x.Audience, x.Subject, x.Collection, x.Record, x.Field, x.Sealed)
}

func showRefs(refs []custos.TokenRef) string {
	var b strings.Builder
	for _, x := range refs {
		b.WriteString("\t" + showRef(x) + "\n")
	}
	if len(refs) == 0 {
		b.WriteString("\tnone\n")
	}
	return b.String()
}

func checkNotFound(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, custos.ErrNotFound) {
		t.Errorf("%s: err = %v, want ErrNotFound", what, err)
	}
}

func testCreateSubject(t *testing.T, s custos.Store) {
	sub := createSubject(t, s, "alice")
	checkSubject(t, s, sub)

	other := sub
	other.Residency = "CA"
	other.Key = custos.WrappedKey{KEKID: "kek-2", Ciphertext: []byte("other")}
	other.CreatedAt = when.Add(time.Hour)
	created, err := s.CreateSubject(t.Context(), other)
	if err != nil {
		t.Fatalf("second CreateSubject: %v", err)
	}
	if created {
		t.Errorf("second CreateSubject = true, want false")
	}
	checkSubject(t, s, sub)
}

func testSubjectNotFound(t *testing.T, s custos.Store) {
	createSubject(t, s, "alice")
	_, err := s.Subject(t.Context(), "bob")
	checkNotFound(t, `Subject("bob")`, err)
}

func testPutRecordUnknownSubject(t *testing.T, s custos.Store) {
	r := record("profiles", "p1", "nobody")
	_, err := s.PutRecord(t.Context(), r, []custos.TokenRef{ref("tok", "operator", r, "email")})
	checkNotFound(t, "PutRecord for an unknown subject", err)
	_, err = s.Record(t.Context(), r.Collection, r.ID)
	checkNotFound(t, "Record after a failed PutRecord", err)
	checkRefs(t, s, "tok")
}

func testPutRecordReplace(t *testing.T, s custos.Store) {
	createSubject(t, s, "alice")
	r := record("profiles", "p1", "alice")
	if !putRecord(t, s, r) {
		t.Errorf("first PutRecord = false, want true")
	}
	checkRecord(t, s, r)

	r.Clear = []byte(`{"handle":"alice2"}`)
	r.Sealed = nil
	r.UpdatedAt = when.Add(time.Minute)
	if putRecord(t, s, r) {
		t.Errorf("second PutRecord = true, want false")
	}
	checkRecord(t, s, r)
}

func testPutRecordReplacesRefs(t *testing.T, s custos.Store) {
	createSubject(t, s, "alice")
	r := record("profiles", "p1", "alice")
	other := record("profiles", "p2", "alice")
	putRecord(t, s, r, ref("t1", "operator", r, "email"), ref("t2", "operator", r, "phone"))
	putRecord(t, s, other, ref("t1", "monitor", other, "email"))

	putRecord(t, s, r, ref("t2", "operator", r, "phone"), ref("t3", "operator", r, "ip"))
	checkRefs(t, s, "t1", ref("t1", "monitor", other, "email"))
	checkRefs(t, s, "t2", ref("t2", "operator", r, "phone"))
	checkRefs(t, s, "t3", ref("t3", "operator", r, "ip"))

	putRecord(t, s, r)
	checkRefs(t, s, "t2")
	checkRefs(t, s, "t3")
	checkRefs(t, s, "t1", ref("t1", "monitor", other, "email"))
}

// testPutRecordForeignRefs checks that a store refuses refs that point
// anywhere but the record they are stored with, which would survive the
// record's next replacement, and refs without an index, a KEK or a sealed
// token, which could be neither found nor indexed again.
func testPutRecordForeignRefs(t *testing.T, s custos.Store) {
	createSubject(t, s, "alice")
	createSubject(t, s, "bob")
	r := record("profiles", "p1", "alice")
	for _, f := range []func(*custos.TokenRef){
		func(x *custos.TokenRef) { x.Subject = "bob" },
		func(x *custos.TokenRef) { x.Collection = "messages" },
		func(x *custos.TokenRef) { x.Record = "p2" },
		func(x *custos.TokenRef) { x.Index = nil },
		func(x *custos.TokenRef) { x.Index = []byte{} },
		func(x *custos.TokenRef) { x.KEKID = "" },
		func(x *custos.TokenRef) { x.Sealed = nil },
	} {
		x := ref("tok", "operator", r, "email")
		f(&x)
		if _, err := s.PutRecord(t.Context(), r, []custos.TokenRef{x}); err == nil {
			t.Errorf("PutRecord with ref %+v succeeded", x)
		}
	}
	_, err := s.Record(t.Context(), r.Collection, r.ID)
	checkNotFound(t, "Record after refused PutRecords", err)
	checkRefs(t, s, "tok")
}

func testPutRecordConflict(t *testing.T, s custos.Store) {
	createSubject(t, s, "alice")
	createSubject(t, s, "bob")
	r := record("profiles", "p1", "alice")
	putRecord(t, s, r, ref("t1", "operator", r, "email"))

	theirs := record("profiles", "p1", "bob")
	_, err := s.PutRecord(t.Context(), theirs, []custos.TokenRef{ref("t2", "operator", theirs, "email")})
	if !errors.Is(err, custos.ErrConflict) {
		t.Errorf("PutRecord of another subject's record: err = %v, want ErrConflict", err)
	}
	checkRecord(t, s, r)
	checkRefs(t, s, "t1", ref("t1", "operator", r, "email"))
	checkRefs(t, s, "t2")

	elsewhere := record("messages", "p1", "bob")
	if !putRecord(t, s, elsewhere) {
		t.Errorf("PutRecord of the same id in another collection = false, want true")
	}
	checkRecord(t, s, r)
	checkRecord(t, s, elsewhere)
}

func testRecordRoundTrip(t *testing.T, s custos.Store) {
	createSubject(t, s, "alice")
	tests := []struct {
		name          string
		clear, sealed []byte
		at            time.Time
	}{
		{"both", []byte(`{"a":1}`), []byte{0, 1, 2, 0xff}, when},
		{"nil sealed", []byte(`{}`), nil, when},
		{"empty sealed", []byte(`{}`), []byte{}, when},
		{"nil clear", nil, []byte("x"), when},
		{"empty clear", []byte{}, []byte("x"), when},
		{"utc", []byte(`{}`), nil, time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)},
		{"before 1970", []byte(`{}`), nil, time.Date(1969, 7, 20, 20, 17, 40, 999999999, time.UTC)},
		{"far future", []byte(`{}`), nil, time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
	}
	for i, tt := range tests {
		r := custos.SealedRecord{
			Collection: "profiles",
			ID:         fmt.Sprintf("r%d", i),
			Subject:    "alice",
			Clear:      tt.clear,
			Sealed:     tt.sealed,
			UpdatedAt:  tt.at,
		}
		putRecord(t, s, r)
		t.Run(tt.name, func(t *testing.T) { checkRecord(t, s, r) })
	}

	sub := subject("bob")
	sub.Key.Ciphertext = []byte{0, 0xfe, 0xff}
	sub.CreatedAt = time.Date(2030, 1, 1, 0, 0, 0, 1, time.FixedZone("east", 9*3600))
	if _, err := s.CreateSubject(t.Context(), sub); err != nil {
		t.Fatal(err)
	}
	checkSubject(t, s, sub)
}

func testRecordNotFound(t *testing.T, s custos.Store) {
	createSubject(t, s, "alice")
	putRecord(t, s, record("profiles", "p1", "alice"))
	for _, k := range [][2]string{{"profiles", "p2"}, {"messages", "p1"}, {"", ""}} {
		_, err := s.Record(t.Context(), k[0], k[1])
		checkNotFound(t, fmt.Sprintf("Record(%q, %q)", k[0], k[1]), err)
	}
}

func testTokenRefs(t *testing.T, s custos.Store) {
	createSubject(t, s, "alice")
	createSubject(t, s, "bob")
	a := record("profiles", "pa", "alice")
	b := record("profiles", "pb", "bob")
	refsA := []custos.TokenRef{
		ref("shared", "operator", a, "email"),
		ref("shared", "monitor", a, "email"),
		ref("shared", "operator", a, "backup_email"),
		ref("only-a", "operator", a, "phone"),
	}
	refsB := []custos.TokenRef{ref("shared", "operator", b, "email")}
	putRecord(t, s, a, refsA...)
	putRecord(t, s, b, refsB...)

	checkRefs(t, s, "shared", refsA[0], refsA[1], refsA[2], refsB[0])
	checkRefs(t, s, "only-a", refsA[3])
	checkRefs(t, s, "unknown")
	checkRefs(t, s, "")
	// An index is matched whole, not as a prefix.
	checkRefsOf(t, "TokenRefs(prefix of an index)", tokenRefs(s, index("only")))

	// A ref given twice is kept once.
	putRecord(t, s, b, refsB[0], refsB[0])
	checkRefs(t, s, "shared", refsA[0], refsA[1], refsA[2], refsB[0])
}

// testTokenRefsManyIndexes looks refs up by several indexes at once, as
// lookups do during a rotation, when a token has an index under each KEK.
func testTokenRefsManyIndexes(t *testing.T, s custos.Store) {
	createSubject(t, s, "alice")
	r := record("profiles", "p1", "alice")
	var refs []custos.TokenRef
	var indexes [][]byte
	for i := range custos.MaxTokenIndexes {
		x := ref(fmt.Sprintf("t%d", i), "operator", r, fmt.Sprintf("f%d", i))
		x.KEKID = fmt.Sprintf("kek-%d", i%2)
		refs = append(refs, x)
		indexes = append(indexes, x.Index)
	}
	putRecord(t, s, r, refs...)

	checkRefsOf(t, "TokenRefs(every index)", tokenRefs(s, indexes...), refs...)
	checkRefsOf(t, "TokenRefs(two indexes)", tokenRefs(s, indexes[1], indexes[6]), refs[1], refs[6])
	checkRefsOf(t, "TokenRefs(an index and an unknown one)", tokenRefs(s, index("unknown"), indexes[3]), refs[3])
	checkRefsOf(t, "TokenRefs(one index twice)", tokenRefs(s, indexes[2], indexes[2]), refs[2])
	checkRefsOf(t, "TokenRefs(no index)", tokenRefs(s))
	checkRefsOf(t, "TokenRefs(nil)", tokenRefs(s, nil))

	if _, err := s.TokenRefs(t.Context(), append(indexes, index("one more"))); err == nil {
		t.Errorf("TokenRefs of %d indexes succeeded, want a refusal", custos.MaxTokenIndexes+1)
	}
}

func testSubjectTokenRefs(t *testing.T, s custos.Store) {
	createSubject(t, s, "alice")
	createSubject(t, s, "bob")
	a1 := record("profiles", "a1", "alice")
	a2 := record("messages", "a2", "alice")
	b1 := record("profiles", "b1", "bob")
	refsA := []custos.TokenRef{
		ref("shared", "operator", a1, "email"),
		ref("shared", "custodian", a1, "email"),
		ref("a-phone", "operator", a1, "phone"),
		ref("a-body", "operator", a2, "body"),
	}
	refsB := []custos.TokenRef{ref("shared", "operator", b1, "email")}
	putRecord(t, s, a1, refsA[:3]...)
	putRecord(t, s, a2, refsA[3])
	putRecord(t, s, b1, refsB...)
	putRecord(t, s, record("profiles", "a3", "alice"))

	checkRefsOf(t, `SubjectTokenRefs("alice")`, subjectRefs(s, "alice"), refsA...)
	checkRefsOf(t, `SubjectTokenRefs("bob")`, subjectRefs(s, "bob"), refsB...)
	checkRefsOf(t, `SubjectTokenRefs("carol")`, subjectRefs(s, "carol"))
	checkRefsOf(t, `SubjectTokenRefs("")`, subjectRefs(s, ""))

	// Replacing a record replaces its refs among its subject's.
	putRecord(t, s, a1, refsA[2])
	checkRefsOf(t, `SubjectTokenRefs("alice") after a replacement`, subjectRefs(s, "alice"), refsA[2], refsA[3])

	if _, err := s.DeleteSubject(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	checkRefsOf(t, `SubjectTokenRefs("alice") after DeleteSubject`, subjectRefs(s, "alice"))
	checkRefsOf(t, `SubjectTokenRefs("bob") after alice's DeleteSubject`, subjectRefs(s, "bob"), refsB...)
}

func testReindexTokenRef(t *testing.T, s custos.Store) {
	createSubject(t, s, "alice")
	r := record("profiles", "p1", "alice")
	email := ref("t-email", "operator", r, "email")
	phone := ref("t-phone", "operator", r, "phone")
	custodian := ref("t-email", "custodian", r, "email")
	putRecord(t, s, r, email, phone, custodian)

	moved := email
	moved.Index, moved.KEKID = index("t-email@kek-2"), "kek-2"
	if ok, err := s.ReindexTokenRef(t.Context(), email, moved.Index, moved.KEKID); err != nil || !ok {
		t.Fatalf("ReindexTokenRef = %v, %v; want true, nil", ok, err)
	}
	// The ref moved whole, Sealed kept; the ref of another audience with the
	// same index did not move.
	checkRefs(t, s, "t-email", custodian)
	checkRefs(t, s, "t-email@kek-2", moved)
	checkRefs(t, s, "t-phone", phone)

	// A compare-and-swap from what is no longer stored loses.
	for name, stale := range map[string]custos.TokenRef{
		"the old index":         email,
		"a stale KEK":           func() custos.TokenRef { x := moved; x.KEKID = "kek-1"; return x }(),
		"a stale index":         func() custos.TokenRef { x := moved; x.Index = index("t-email"); return x }(),
		"another index and KEK": func() custos.TokenRef { x := moved; x.Index, x.KEKID = index("other"), "kek-3"; return x }(),
	} {
		if ok, err := s.ReindexTokenRef(t.Context(), stale, index("t-email@kek-3"), "kek-3"); err != nil || ok {
			t.Errorf("ReindexTokenRef from %s = %v, %v; want false, nil", name, ok, err)
		}
	}
	checkRefs(t, s, "t-email@kek-2", moved)
	checkRefs(t, s, "t-email@kek-3")

	if _, err := s.ReindexTokenRef(t.Context(), moved, nil, "kek-3"); err == nil {
		t.Error("ReindexTokenRef to an empty index succeeded")
	}
	if _, err := s.ReindexTokenRef(t.Context(), moved, index("x"), ""); err == nil {
		t.Error("ReindexTokenRef to an empty KEK succeeded")
	}
	checkRefs(t, s, "t-email@kek-2", moved)

	// A ref whose record was replaced without it is gone.
	putRecord(t, s, r, custodian)
	_, err := s.ReindexTokenRef(t.Context(), phone, index("t-phone@kek-2"), "kek-2")
	checkNotFound(t, "ReindexTokenRef of a ref replaced away", err)
	_, err = s.ReindexTokenRef(t.Context(), ref("t-x", "operator", record("profiles", "p9", "alice"), "email"), index("y"), "kek-2")
	checkNotFound(t, "ReindexTokenRef of a ref never stored", err)
	checkRefs(t, s, "t-phone@kek-2")

	// A ref of a deleted subject is gone.
	if _, err := s.DeleteSubject(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	_, err = s.ReindexTokenRef(t.Context(), custodian, index("t-email@kek-2"), "kek-2")
	checkNotFound(t, "ReindexTokenRef of a deleted subject's ref", err)
	checkRefs(t, s, "t-email")
	checkRefs(t, s, "t-email@kek-2")
}

func testDeleteSubject(t *testing.T, s custos.Store) {
	createSubject(t, s, "alice")
	bob := createSubject(t, s, "bob")
	var aliceRecords []custos.SealedRecord
	for i := range 3 {
		r := record("profiles", fmt.Sprintf("a%d", i), "alice")
		putRecord(t, s, r, ref("ta", "operator", r, "email"), ref(fmt.Sprintf("ta%d", i), "operator", r, "email"))
		aliceRecords = append(aliceRecords, r)
	}
	m := record("messages", "a0", "alice")
	putRecord(t, s, m, ref("ta", "operator", m, "body"))
	aliceRecords = append(aliceRecords, m)
	rb := record("profiles", "b0", "bob")
	putRecord(t, s, rb, ref("ta", "operator", rb, "email"), ref("tb", "operator", rb, "email"))

	n, err := s.DeleteSubject(t.Context(), "alice")
	if err != nil {
		t.Fatalf("DeleteSubject: %v", err)
	}
	if n != len(aliceRecords) {
		t.Errorf("DeleteSubject = %d records, want %d", n, len(aliceRecords))
	}
	_, err = s.Subject(t.Context(), "alice")
	checkNotFound(t, "Subject after DeleteSubject", err)
	for _, r := range aliceRecords {
		_, err := s.Record(t.Context(), r.Collection, r.ID)
		checkNotFound(t, "Record after DeleteSubject", err)
	}
	for i := range 3 {
		checkRefs(t, s, fmt.Sprintf("ta%d", i))
	}
	checkRefs(t, s, "ta", ref("ta", "operator", rb, "email"))
	checkRefsOf(t, `SubjectTokenRefs("alice") after DeleteSubject`, subjectRefs(s, "alice"))

	_, err = s.DeleteSubject(t.Context(), "alice")
	checkNotFound(t, "second DeleteSubject", err)
	_, err = s.DeleteSubject(t.Context(), "carol")
	checkNotFound(t, "DeleteSubject of an unknown subject", err)

	checkSubject(t, s, bob)
	checkRecord(t, s, rb)
	checkRefs(t, s, "tb", ref("tb", "operator", rb, "email"))

	// The id is free again, and the record ids of the deleted subject too.
	createSubject(t, s, "alice")
	r := record("profiles", "a0", "bob")
	if !putRecord(t, s, r) {
		t.Errorf("PutRecord of a deleted subject's record id = false, want true")
	}
	n, err = s.DeleteSubject(t.Context(), "alice")
	if err != nil || n != 0 {
		t.Errorf("DeleteSubject of a subject without records = %d, %v; want 0, nil", n, err)
	}
}

func testRecords(t *testing.T, s custos.Store) {
	if got, err := s.Records(t.Context(), "events", "", 10); err != nil || len(got) != 0 {
		t.Fatalf("Records of an empty store = %v, %v; want none", got, err)
	}
	if _, err := s.Records(t.Context(), "events", "", 0); err == nil {
		t.Error("Records with limit 0 succeeded")
	}
	createSubject(t, s, "u1")
	createSubject(t, s, "u2")
	want := map[string]custos.SealedRecord{}
	for i := range 23 {
		r := record("events", fmt.Sprintf("e%02d", i), []string{"u1", "u2"}[i%2])
		putRecord(t, s, r)
		want[r.ID] = storedRecord(r)
	}
	putRecord(t, s, record("other", "e99", "u1"))

	walk := func(page func(after string, limit int) ([]custos.SealedRecord, error), limit int) []string {
		t.Helper()
		var ids []string
		for after := ""; ; {
			recs, err := page(after, limit)
			if err != nil {
				t.Fatalf("walk after %q: %v", after, err)
			}
			if len(recs) > limit {
				t.Fatalf("page of %d records, limit %d", len(recs), limit)
			}
			for _, r := range recs {
				equalRecord(t, r, want[r.ID])
				ids = append(ids, r.ID)
			}
			if len(recs) < limit {
				return ids
			}
			after = recs[len(recs)-1].ID
		}
	}
	for _, limit := range []int{1, 4, 23, 50} {
		all := walk(func(after string, limit int) ([]custos.SealedRecord, error) {
			return s.Records(t.Context(), "events", after, limit)
		}, limit)
		if !slices.IsSorted(all) || len(all) != 23 {
			t.Errorf("walk of events with limit %d = %q, want the 23 events in order", limit, all)
		}
		u2 := walk(func(after string, limit int) ([]custos.SealedRecord, error) {
			return s.SubjectRecords(t.Context(), "events", "u2", after, limit)
		}, limit)
		var wantU2 []string
		for _, id := range all {
			if want[id].Subject == "u2" {
				wantU2 = append(wantU2, id)
			}
		}
		if !slices.Equal(u2, wantU2) {
			t.Errorf("walk of u2's events with limit %d = %q, want %q", limit, u2, wantU2)
		}
	}
	if got, err := s.SubjectRecords(t.Context(), "events", "nobody", "", 10); err != nil || len(got) != 0 {
		t.Errorf("SubjectRecords of an unknown subject = %v, %v; want none", got, err)
	}
	if _, err := s.DeleteSubject(t.Context(), "u1"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Records(t.Context(), "events", "", 50); err != nil || len(got) != 11 {
		t.Errorf("Records after deleting u1 = %d records, %v; want u2's 11", len(got), err)
	}
}

func testSubjects(t *testing.T, s custos.Store) {
	got, err := s.Subjects(t.Context(), "", 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("Subjects of an empty store = %v, %v; want none", got, err)
	}

	// Ids whose order differs between byte order and natural-language
	// collations: stores sort by bytes, as Go does.
	ids := []string{"b", "a", "B", "A", "_x", "a-b", "ab", "a b", "é", "e", "z", "Z", "10", "9", "ä", "~", "日本"}
	want := map[string]custos.StoredSubject{}
	for _, id := range ids {
		want[id] = createSubject(t, s, id)
	}
	slices.Sort(ids)

	for _, limit := range []int{1, 2, 5, len(ids), len(ids) + 3} {
		var walked []string
		after := ""
		for {
			page, err := s.Subjects(t.Context(), after, limit)
			if err != nil {
				t.Fatalf("Subjects(%q, %d): %v", after, limit, err)
			}
			if len(page) > limit {
				t.Fatalf("Subjects(%q, %d) = %d subjects", after, limit, len(page))
			}
			for _, sub := range page {
				equalSubject(t, sub, storedSubject(want[sub.ID]))
				walked = append(walked, sub.ID)
			}
			if len(page) < limit {
				break
			}
			after = page[len(page)-1].ID
		}
		if !slices.Equal(walked, ids) {
			t.Errorf("walk with limit %d = %q, want %q", limit, walked, ids)
		}
	}

	page, err := s.Subjects(t.Context(), "a", 3)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.Index(ids, "a")
	var gotIDs []string
	for _, sub := range page {
		gotIDs = append(gotIDs, sub.ID)
	}
	if !slices.Equal(gotIDs, ids[i+1:i+4]) {
		t.Errorf(`Subjects("a", 3) = %q, want %q`, gotIDs, ids[i+1:i+4])
	}
	page, err = s.Subjects(t.Context(), "\U0010ffff", 3)
	if err != nil || len(page) != 0 {
		t.Errorf("Subjects after the last id = %v, %v; want none", page, err)
	}
}

func testRewrapKey(t *testing.T, s custos.Store) {
	sub := createSubject(t, s, "alice")
	old := sub.Key
	next := custos.WrappedKey{KEKID: "kek-2", Ciphertext: []byte("rewrapped")}

	stale := custos.WrappedKey{KEKID: old.KEKID, Ciphertext: []byte("not the stored key")}
	if ok, err := s.RewrapKey(t.Context(), "alice", stale, next); err != nil || ok {
		t.Errorf("RewrapKey with a stale ciphertext = %v, %v; want false, nil", ok, err)
	}
	stale = custos.WrappedKey{KEKID: "kek-0", Ciphertext: old.Ciphertext}
	if ok, err := s.RewrapKey(t.Context(), "alice", stale, next); err != nil || ok {
		t.Errorf("RewrapKey with a stale KEK id = %v, %v; want false, nil", ok, err)
	}
	checkSubject(t, s, sub)

	if ok, err := s.RewrapKey(t.Context(), "alice", old, next); err != nil || !ok {
		t.Fatalf("RewrapKey = %v, %v; want true, nil", ok, err)
	}
	sub.Key = next
	checkSubject(t, s, sub)

	if ok, err := s.RewrapKey(t.Context(), "alice", old, next); err != nil || ok {
		t.Errorf("second RewrapKey from the old key = %v, %v; want false, nil", ok, err)
	}

	if _, err := s.DeleteSubject(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	_, err := s.RewrapKey(t.Context(), "alice", next, old)
	checkNotFound(t, "RewrapKey of a deleted subject", err)
	_, err = s.RewrapKey(t.Context(), "nobody", next, old)
	checkNotFound(t, "RewrapKey of an unknown subject", err)
}

func testLargeValues(t *testing.T, s custos.Store) {
	createSubject(t, s, "alice")
	r := record("videos", "v1", "alice")
	r.Sealed = make([]byte, 1<<20)
	for i := range r.Sealed {
		r.Sealed[i] = byte(i * 7)
	}
	r.Clear = []byte(`{"title":"` + strings.Repeat("x", 1<<20) + `"}`)
	putRecord(t, s, r)
	checkRecord(t, s, r)

	sub := subject("bob")
	sub.Key.Ciphertext = bytes.Repeat([]byte{0xab}, 64<<10)
	if _, err := s.CreateSubject(t.Context(), sub); err != nil {
		t.Fatal(err)
	}
	checkSubject(t, s, sub)
}

// oddIDs are valid ids that would break SQL built by concatenation or that
// trip over escaping, LIKE patterns or encodings.
var oddIDs = []string{
	`it's`,
	`"quoted"`,
	`'; DROP TABLE subjects; --`,
	`x'); DELETE FROM records; --`,
	`back\slash`,
	`100%_match`,
	`$1`,
	`?`,
	`tab	and
newline`,
	"ユーザー",
	"🔑",
	"e\u0301",
	strings.Repeat("long", 256),
}

func testOddIDs(t *testing.T, s custos.Store) {
	for i, id := range oddIDs {
		sub := createSubject(t, s, id)
		checkSubject(t, s, sub)
		r := record(id, id, id)
		putRecord(t, s, r, ref(id, id, r, id))
		checkRecord(t, s, r)
		checkRefs(t, s, id, ref(id, id, r, id))
		checkRefsOf(t, fmt.Sprintf("SubjectTokenRefs(%q)", id), subjectRefs(s, id), ref(id, id, r, id))
		if ok, err := s.ReindexTokenRef(t.Context(), ref(id, id, r, id), index(id+"@"+id), id); err != nil || !ok {
			t.Errorf("ReindexTokenRef(%q) = %v, %v", id, ok, err)
		}
		if ok, err := s.RewrapKey(t.Context(), id, sub.Key, sub.Key); err != nil || !ok {
			t.Errorf("RewrapKey(%q) = %v, %v", id, ok, err)
		}
		if i%2 == 0 {
			if n, err := s.DeleteSubject(t.Context(), id); err != nil || n != 1 {
				t.Errorf("DeleteSubject(%q) = %d, %v; want 1, nil", id, n, err)
			}
		}
	}

	var want []string
	for i, id := range oddIDs {
		if i%2 == 1 {
			want = append(want, id)
		}
	}
	slices.Sort(want)
	page, err := s.Subjects(t.Context(), "", len(oddIDs)+1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sub := range page {
		got = append(got, sub.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Subjects = %q, want %q", got, want)
	}
	for i, id := range oddIDs {
		_, err := s.Record(t.Context(), id, id)
		if i%2 == 0 {
			checkNotFound(t, "Record of a deleted subject", err)
		} else if err != nil {
			t.Errorf("Record(%q): %v", id, err)
		}
	}
}

// calls exercises every method of s but Close and Location.
func calls(s custos.Store) map[string]func(ctx context.Context) error {
	r := record("profiles", "p1", "alice")
	return map[string]func(ctx context.Context) error{
		"CreateSubject": func(ctx context.Context) error {
			_, err := s.CreateSubject(ctx, subject("bob"))
			return err
		},
		"Subject": func(ctx context.Context) error {
			_, err := s.Subject(ctx, "alice")
			return err
		},
		"PutRecord": func(ctx context.Context) error {
			_, err := s.PutRecord(ctx, r, []custos.TokenRef{ref("tok", "operator", r, "email")})
			return err
		},
		"Record": func(ctx context.Context) error {
			_, err := s.Record(ctx, r.Collection, r.ID)
			return err
		},
		"DeleteSubject": func(ctx context.Context) error {
			_, err := s.DeleteSubject(ctx, "alice")
			return err
		},
		"TokenRefs": func(ctx context.Context) error {
			_, err := s.TokenRefs(ctx, [][]byte{index("tok")})
			return err
		},
		"SubjectTokenRefs": func(ctx context.Context) error {
			_, err := s.SubjectTokenRefs(ctx, "alice")
			return err
		},
		"ReindexTokenRef": func(ctx context.Context) error {
			_, err := s.ReindexTokenRef(ctx, ref("tok", "operator", r, "email"), index("tok2"), "kek-2")
			return err
		},
		"Subjects": func(ctx context.Context) error {
			_, err := s.Subjects(ctx, "", 10)
			return err
		},
		"RewrapKey": func(ctx context.Context) error {
			sub := subject("alice")
			_, err := s.RewrapKey(ctx, "alice", sub.Key, custos.WrappedKey{KEKID: "kek-2", Ciphertext: []byte("x")})
			return err
		},
	}
}

func testCancelledContext(t *testing.T, s custos.Store) {
	sub := createSubject(t, s, "alice")
	r := record("profiles", "p1", "alice")
	putRecord(t, s, r)

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	for name, call := range calls(s) {
		for _, ctx := range []context.Context{cancelled, expired} {
			if err := call(ctx); err == nil {
				t.Errorf("%s with a done context (%v) succeeded", name, ctx.Err())
			}
		}
	}
	checkSubject(t, s, sub)
	checkRecord(t, s, r)
	checkRefs(t, s, "tok")
	if _, err := s.Subject(t.Context(), "bob"); !errors.Is(err, custos.ErrNotFound) {
		t.Errorf("CreateSubject with a done context created the subject: %v", err)
	}
}

func testClosed(t *testing.T, s custos.Store) {
	createSubject(t, s, "alice")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, call := range calls(s) {
		if err := call(t.Context()); err == nil {
			t.Errorf("%s on a closed store succeeded", name)
		}
	}
}

// testConcurrency has goroutines race on a small set of subjects and
// records, then checks that what is left is consistent.
func testConcurrency(t *testing.T, s custos.Store) {
	const workers = 16
	ops := 120
	if testing.Short() {
		ops = 30
	}
	const nSubjects, nRecords = 8, 12
	subjectID := func(i int) string { return fmt.Sprintf("s%d", i%nSubjects) }
	recordID := func(i int) string { return fmt.Sprintf("r%d", i%nRecords) }

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range ops {
				if err := concurrentOp(t.Context(), s, w, i, subjectID(w+i), recordID(w*i+i)); err != nil {
					errs <- fmt.Errorf("worker %d op %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	for i := range nRecords {
		r, err := s.Record(t.Context(), "c", recordID(i))
		if errors.Is(err, custos.ErrNotFound) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Subject(t.Context(), r.Subject); err != nil {
			t.Errorf("record %q outlived its subject %q: %v", r.ID, r.Subject, err)
		}
		refs, err := s.TokenRefs(t.Context(), [][]byte{index("tok-" + r.ID), index("tok-" + r.ID + "@kek-2")})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range refs {
			if x.Subject != r.Subject || x.Record != r.ID {
				t.Errorf("ref %+v does not match its record, of %q", x, r.Subject)
			}
		}
	}
}

// concurrentOp does the i-th operation of worker w. Only the errors the
// contract documents for it are tolerated.
func concurrentOp(ctx context.Context, s custos.Store, w, i int, sid, rid string) error {
	tolerate := func(err error, allowed ...error) error {
		for _, a := range allowed {
			if errors.Is(err, a) {
				return nil
			}
		}
		return err
	}
	switch (w + i) % 8 {
	case 0, 1:
		_, err := s.CreateSubject(ctx, subject(sid))
		return err
	case 2, 3:
		r := record("c", rid, sid)
		r.Sealed = fmt.Appendf(nil, "w%d i%d", w, i)
		refs := []custos.TokenRef{ref("tok-"+rid, "operator", r, "f"), ref("tok-"+sid, "monitor", r, "g")}
		_, err := s.PutRecord(ctx, r, refs)
		return tolerate(err, custos.ErrNotFound, custos.ErrConflict)
	case 4:
		_, err := s.Record(ctx, "c", rid)
		return tolerate(err, custos.ErrNotFound)
	case 5:
		if _, err := s.TokenRefs(ctx, [][]byte{index("tok-" + rid), index("tok-" + sid)}); err != nil {
			return err
		}
		if _, err := s.SubjectTokenRefs(ctx, sid); err != nil {
			return err
		}
		_, err := s.Subjects(ctx, "", 5)
		return err
	case 6:
		sub := subject(sid)
		next := custos.WrappedKey{KEKID: "kek-2", Ciphertext: []byte("w" + sid)}
		_, err := s.RewrapKey(ctx, sid, sub.Key, next)
		if err := tolerate(err, custos.ErrNotFound); err != nil {
			return err
		}
		_, err = s.Subject(ctx, sid)
		return tolerate(err, custos.ErrNotFound)
	default:
		if i%3 != 0 {
			r := record("c", rid, sid)
			_, err := s.ReindexTokenRef(ctx, ref("tok-"+rid, "operator", r, "f"), index("tok-"+rid+"@kek-2"), "kek-2")
			return tolerate(err, custos.ErrNotFound)
		}
		_, err := s.DeleteSubject(ctx, sid)
		return tolerate(err, custos.ErrNotFound)
	}
}
