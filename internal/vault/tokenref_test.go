package vault

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/keys"
)

func testRef(subject string) custos.TokenRef {
	return custos.TokenRef{Audience: "operator", Subject: subject, Collection: "users", Record: "r1", Field: "email"}
}

func TestTokenRefSealOpen(t *testing.T) {
	v := New(newKeyring(t), "US")
	st := newMemStore()
	k := newDataKeyFor(t, v, st, "u1")
	ref := testRef("u1")
	for _, tok := range []string{"", "tk_abc", "+1 202 555 0199", strings.Repeat("x", 256)} {
		sealed, err := k.SealTokenRef(ref, tok)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != 1+12+len(tok)+16 || sealed[0] != 1 {
			t.Fatalf("sealed %d bytes into %d, first byte %d", len(tok), len(sealed), sealed[0])
		}
		if tok != "" && bytes.Contains(sealed, []byte(tok)) {
			t.Fatal("the token is in clear in the sealed ref")
		}
		x := ref
		x.Sealed = sealed
		if got, err := k.OpenTokenRef(x); err != nil || got != tok {
			t.Fatalf("OpenTokenRef = %q, %v; want %q", got, err, tok)
		}
		if again, _ := k.SealTokenRef(ref, tok); bytes.Equal(again, sealed) {
			t.Fatal("two seals are equal: nonce reused")
		}
	}
	if _, err := k.SealTokenRef(testRef("u2"), "tk_abc"); err == nil {
		t.Error("SealTokenRef of another subject's ref succeeded")
	}
}

func TestTokenRefBound(t *testing.T) {
	v := New(newKeyring(t), "US")
	st := newMemStore()
	k := newDataKeyFor(t, v, st, "u1")
	ref := testRef("u1")
	ref.Sealed, _ = k.SealTokenRef(ref, "tk_abc")
	if _, err := k.OpenTokenRef(ref); err != nil {
		t.Fatalf("control: %v", err)
	}
	for name, change := range map[string]func(*custos.TokenRef){
		"audience":   func(x *custos.TokenRef) { x.Audience = "custodian" },
		"collection": func(x *custos.TokenRef) { x.Collection = "posts" },
		"record":     func(x *custos.TokenRef) { x.Record = "r2" },
		"field":      func(x *custos.TokenRef) { x.Field = "phone" },
		"boundary":   func(x *custos.TokenRef) { x.Collection, x.Record = "user", "sr1" },
		"truncated":  func(x *custos.TokenRef) { x.Sealed = x.Sealed[:len(x.Sealed)-1] },
		"appended":   func(x *custos.TokenRef) { x.Sealed = append(bytes.Clone(x.Sealed), 0) },
		"version":    func(x *custos.TokenRef) { x.Sealed = append([]byte{2}, x.Sealed[1:]...) },
		"empty":      func(x *custos.TokenRef) { x.Sealed = nil },
	} {
		x := ref
		change(&x)
		if _, err := k.OpenTokenRef(x); err == nil {
			t.Errorf("%s changed: OpenTokenRef succeeded", name)
		}
	}
	for i := range ref.Sealed {
		x := ref
		x.Sealed = bytes.Clone(ref.Sealed)
		x.Sealed[i] ^= 0x80
		if _, err := k.OpenTokenRef(x); err == nil {
			t.Fatalf("OpenTokenRef succeeded with byte %d changed", i)
		}
	}
	// Another subject's key, or a record sealed with the same key, do not
	// open it either.
	if _, err := newDataKeyFor(t, v, st, "u2").OpenTokenRef(ref); err == nil {
		t.Error("another subject's key opened the ref")
	}
	if _, err := k.Open(ref.Collection, ref.Record, ref.Sealed); err == nil {
		t.Error("a sealed token ref opened as a sealed record")
	}
}

// TestTokenRefFormat opens a sealed token with AES-256-GCM computed here,
// from the format the package documents.
func TestTokenRefFormat(t *testing.T) {
	dek := bytes.Repeat([]byte{3}, 32)
	k, _ := newDataKey(dek, "US", "u1")
	sealed, _ := k.SealTokenRef(testRef("u1"), "tk_abc")
	b, _ := aes.NewCipher(dek)
	g, _ := cipher.NewGCM(b)
	aad := []byte("custos-token-ref-v1\x00\x01\x02US\x02u1\x08operator\x05users\x02r1\x05email")
	got, err := g.Open(nil, sealed[1:13], sealed[13:], aad)
	if err != nil || string(got) != "tk_abc" {
		t.Fatalf("independent open = %q, %v", got, err)
	}
}

func TestIndexToken(t *testing.T) {
	ctx := context.Background()
	kr := newKeyring(t)
	v := New(kr, "US")
	k1 := kr.Current()
	kek, index, err := v.IndexToken(ctx, "tk_abc")
	if err != nil || kek != k1 {
		t.Fatalf("IndexToken = %s, %v; want %s", kek, err, k1)
	}
	if want, _ := kr.TokenIndex(ctx, k1, []byte("tk_abc")); !bytes.Equal(index, want) {
		t.Error("IndexToken is not the keyring's index under the current KEK")
	}
	if got, _ := v.TokenIndexes(ctx, "tk_abc"); len(got) != 1 || !bytes.Equal(got[0], index) {
		t.Errorf("TokenIndexes with one KEK = %x", got)
	}

	k2, _ := kr.AddKEK(ctx)
	kek2, index2, err := v.IndexToken(ctx, "tk_abc")
	if err != nil || kek2 != k2 || bytes.Equal(index2, index) {
		t.Fatalf("IndexToken after AddKEK = %s, %v; want %s and a new index", kek2, err, k2)
	}
	got, err := v.TokenIndexes(ctx, "tk_abc")
	if err != nil || len(got) != 2 || !bytes.Equal(got[0], index2) || !bytes.Equal(got[1], index) {
		t.Fatalf("TokenIndexes with two KEKs = %x, %v; want the current one's first", got, err)
	}

	kr.DestroyKEKs(ctx, k2)
	if got, _ := v.TokenIndexes(ctx, "tk_abc"); len(got) != 1 || !bytes.Equal(got[0], index2) {
		t.Errorf("TokenIndexes after DestroyKEKs = %x", got)
	}
}

// TestRotateReindexesTokenRefs looks tokens up before, during (two KEKs,
// refs under either) and after a rotation, which first fails midway.
func TestRotateReindexesTokenRefs(t *testing.T) {
	ctx := context.Background()
	kr, v, st, ids := populated(t, 1100)
	old := kr.Current()
	before, _ := st.SubjectTokenRefs(ctx, ids[7])
	checkAllOpen(t, v, st, ids)

	// Lookups during the walk, after every page, find every token.
	var checked int
	progress := func(_, seen int) {
		checked++
		for _, id := range []string{ids[0], ids[seen-1], ids[min(seen, len(ids)-1)], ids[len(ids)-1]} {
			if err := findTokens(ctx, v, st, id); err != nil {
				t.Errorf("during the rotation, %d subjects seen: %v", seen, err)
			}
		}
	}
	// The store fails midway through the first walk, on its second page.
	var reindexed int
	st.beforeReindex = func(custos.TokenRef) error {
		if reindexed++; reindexed > 1500 {
			return errInjected
		}
		return nil
	}
	if _, err := Rotate(ctx, st, kr, progress); !errors.Is(err, errInjected) {
		t.Fatalf("Rotate with a failing store: %v", err)
	}
	if checked == 0 {
		t.Fatal("no lookup made during the rotation")
	}
	if n := len(kr.KEKs()); n != 2 {
		t.Fatalf("%d KEKs after a failed rotation, want 2", n)
	}
	under := refsByKEK(st)
	if len(under) != 2 || under[old] == 0 {
		t.Fatalf("refs by KEK after a failed rotation: %v, want some under each", under)
	}
	checkAllOpen(t, v, st, ids)

	// Running Rotate again completes the rotation.
	st.beforeReindex = nil
	rep, err := Rotate(ctx, st, kr, progress)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Destroyed) != 2 || rep.Reindexed != 2200 || len(kr.KEKs()) != 1 {
		t.Fatalf("report %+v, KEKs %v", rep, kr.KEKs())
	}
	checkRefsUnder(t, st, rep.NewKEK, 2200)
	checkAllOpen(t, v, st, ids)

	// The refs moved: their old index no longer finds them, their sealed
	// token is as it was.
	after, _ := st.SubjectTokenRefs(ctx, ids[7])
	if len(before) != 2 || len(after) != 2 {
		t.Fatalf("refs before %d, after %d", len(before), len(after))
	}
	for _, b := range before {
		i := slices.IndexFunc(after, func(a custos.TokenRef) bool { return a.Audience == b.Audience })
		if bytes.Equal(after[i].Index, b.Index) || !bytes.Equal(after[i].Sealed, b.Sealed) {
			t.Errorf("ref for %s: index kept or sealed token changed", b.Audience)
		}
		if refs, _ := st.TokenRefs(ctx, [][]byte{b.Index}); len(refs) != 0 {
			t.Errorf("the old index still finds %d refs", len(refs))
		}
	}
}

func refsByKEK(st *memStore) map[string]int {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := map[string]int{}
	for _, refs := range st.refs {
		for _, x := range refs {
			n[x.KEKID]++
		}
	}
	return n
}

// TestRotateCatchesStraggledRefs has writers store refs indexed under the
// old KEK behind the walks: first, refs of a subject whose key the first
// walk already rewrapped; then, while the second walk moves those, another
// value's ref in place of one of them, so that its compare-and-swap is
// lost. Only a walk that counts refs as well as keys walks again, and moves
// that ref before the old KEK is destroyed.
func TestRotateCatchesStraggledRefs(t *testing.T) {
	ctx := context.Background()
	kr, v, st, ids := populated(t, 600)
	late := ids[3]
	s, _ := st.Subject(ctx, late)
	k, err := v.Key(ctx, s, readReason(late))
	if err != nil {
		t.Fatal(err)
	}
	stale, err := refsOf(ctx, v, k, late)
	if err != nil {
		t.Fatal(err)
	}
	changed := stale[0]
	changed.KEKID, changed.Index, _ = v.IndexToken(ctx, "tk_changed")
	changed.Sealed, _ = k.SealTokenRef(changed, "tk_changed")

	var pages, attempts int
	st.beforeSubjects = func(after string) {
		if pages++; pages == 2 { // the first walk's second page: late is behind it
			st.refs[late] = copyRefs(stale)
		}
	}
	st.beforeReindex = func(x custos.TokenRef) error {
		if x.Subject == late && sameField(x, changed) {
			if attempts++; attempts == 2 { // in the second walk
				st.refs[late][slices.IndexFunc(st.refs[late], func(y custos.TokenRef) bool { return sameField(y, changed) })] = copyRef(changed)
			}
		}
		return nil
	}
	rep, err := Rotate(ctx, st, kr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reindexed != 1202 {
		t.Errorf("report %+v, want 1202 refs indexed again", rep)
	}
	checkRefsUnder(t, st, rep.NewKEK, 1200)
	checkAllOpen(t, v, st, without(ids, late))
	if refs, err := v.FindTokenRefs(ctx, st, "tk_changed"); err != nil || len(refs) != 1 || refs[0].Subject != late {
		t.Errorf("the ref changed during the rotation: %+v, %v", refs, err)
	}
}

func TestRotateRefusesUnopenableRef(t *testing.T) {
	ctx := context.Background()
	kr, v, st, ids := populated(t, 3)
	st.refs[ids[1]][0].Sealed[20] ^= 1
	_, err := Rotate(ctx, st, kr, nil)
	if err == nil || !strings.Contains(err.Error(), "1 token refs do not open") {
		t.Fatalf("Rotate with a ref that does not open: %v", err)
	}
	if strings.Contains(err.Error(), ids[1]) {
		t.Errorf("error names the subject: %v", err)
	}
	if n := len(kr.KEKs()); n != 2 {
		t.Errorf("a failed rotation destroyed KEKs: %d left", n)
	}
	checkAllOpen(t, v, st, []string{ids[0], ids[2]})
}

// destroyHook runs before each DestroyKEKs: after a rotation's final walk.
type destroyHook struct {
	*keys.Local
	before func()
}

func (d destroyHook) DestroyKEKs(ctx context.Context, keep string) ([]string, error) {
	d.before()
	return d.Local.DestroyKEKs(ctx, keep)
}

// TestRefreshTokenRefs has a writer store refs it indexed before a
// rotation in another process began, after the rotation's final walk.
func TestRefreshTokenRefs(t *testing.T) {
	ctx := context.Background()
	path := newKeyringFile(t)
	kr, other := openKeyring(t, path), openKeyring(t, path)
	v := New(kr, "US")
	st := newMemStore()
	populate(t, v, st, 2)
	k := newDataKeyFor(t, v, st, "late")
	var refs []custos.TokenRef
	store := func() {
		t.Helper()
		if _, err := st.PutRecord(ctx, custos.SealedRecord{Collection: "users", ID: "r-late", Subject: "late", Sealed: []byte{1}}, refs); err != nil {
			t.Fatal(err)
		}
	}
	index := func() {
		t.Helper()
		var err error
		if refs, err = refsOf(ctx, v, k, "late"); err != nil {
			t.Fatal(err)
		}
	}

	// Without a refresh, the refs are lost to lookups when the old KEK is
	// destroyed, until the next rotation indexes them again.
	index()
	if _, err := Rotate(ctx, st, destroyHook{other, store}, nil); err != nil {
		t.Fatal(err)
	}
	if found, _ := v.FindTokenRefs(ctx, st, tokenOf(audiences[0], "late")); len(found) != 0 {
		t.Fatalf("control: a ref under a destroyed KEK was found")
	}
	if _, err := Rotate(ctx, st, other, nil); err != nil {
		t.Fatal(err)
	}
	if err := findTokens(ctx, v, st, "late"); err != nil {
		t.Fatalf("the next rotation did not index the refs again: %v", err)
	}

	// With it, they are under the new KEK before the old one goes.
	index()
	refresh := func() {
		store()
		if err := v.RefreshTokenRefs(ctx, st, k, refs); err != nil {
			t.Error(err)
		}
	}
	if _, err := Rotate(ctx, st, destroyHook{other, refresh}, nil); err != nil {
		t.Fatal(err)
	}
	if err := findTokens(ctx, v, st, "late"); err != nil {
		t.Fatal(err)
	}
	// A refresh of refs moved since changes nothing.
	if err := v.RefreshTokenRefs(ctx, st, k, refs); err != nil {
		t.Fatal(err)
	}
	if err := findTokens(ctx, v, st, "late"); err != nil {
		t.Fatal(err)
	}
}

// TestErasedRefsVanish checks that an erased subject's tokens are found
// nowhere once DeleteSubject returns, and that after a rotation its refs in
// a copy of the store taken before match no token and do not open.
func TestErasedRefsVanish(t *testing.T) {
	ctx := context.Background()
	kr, v, st, ids := populated(t, 5)
	erased := ids[2]
	backup := st.backup()
	if _, err := st.DeleteSubject(ctx, erased); err != nil {
		t.Fatal(err)
	}
	if refs, _ := st.SubjectTokenRefs(ctx, erased); len(refs) != 0 {
		t.Errorf("%d refs of an erased subject left", len(refs))
	}
	for _, aud := range audiences {
		if refs, _ := v.FindTokenRefs(ctx, st, tokenOf(aud, erased)); len(refs) != 0 {
			t.Errorf("erased subject's token for %s found %d refs", aud, len(refs))
		}
	}
	// Before the rotation, the backup still yields the tokens.
	if err := findTokens(ctx, v, backup, erased); err != nil {
		t.Fatalf("control: before the rotation the backup should still find the tokens: %v", err)
	}

	if _, err := Rotate(ctx, st, kr, nil); err != nil {
		t.Fatal(err)
	}
	old, _ := backup.SubjectTokenRefs(ctx, erased)
	if len(old) != len(audiences) {
		t.Fatalf("the backup holds %d refs of the erased subject", len(old))
	}
	for _, aud := range audiences {
		indexes, err := v.TokenIndexes(ctx, tokenOf(aud, erased))
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range old {
			if slices.ContainsFunc(indexes, func(i []byte) bool { return bytes.Equal(i, x.Index) }) {
				t.Errorf("the erased subject's token for %s matches a ref of the backup", aud)
			}
		}
	}
	s, _ := backup.Subject(ctx, erased)
	if _, err := v.Key(ctx, s, readReason(erased)); !errors.Is(err, custos.ErrKeyDestroyed) {
		t.Errorf("the key to open the backup's refs: %v, want ErrKeyDestroyed", err)
	}
	checkAllOpen(t, v, st, without(ids, erased))
}
