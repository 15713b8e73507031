package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/keys"
)

// populate registers n subjects in st, each with one sealed record and a
// token ref of its email for each of audiences, and returns their ids.
func populate(t testing.TB, v *Vault, st *memStore, n int) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("u%05d", i)
		if err := register(ctx, v, st, ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// populated returns a keyring, a vault on it and a store populated with n
// subjects, and their ids.
func populated(t testing.TB, n int) (*keys.Local, *Vault, *memStore, []string) {
	t.Helper()
	kr := newKeyring(t)
	v := New(kr, "US")
	st := newMemStore()
	return kr, v, st, populate(t, v, st, n)
}

// without returns ids without id.
func without(ids []string, id string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(x string) bool { return x == id })
}

// openRecord reads subject id and its record from st and opens it.
func openRecord(ctx context.Context, v *Vault, st custos.Store, id string) error {
	s, err := st.Subject(ctx, id)
	if err != nil {
		return err
	}
	k, err := v.Key(ctx, s, readReason(id))
	if err != nil {
		return err
	}
	r, err := st.Record(ctx, "users", "r-"+id)
	if err != nil {
		return err
	}
	p, err := k.Open("users", r.ID, r.Sealed)
	if err != nil {
		return err
	}
	if string(p) != "email of "+id {
		return fmt.Errorf("record of %s opened to %q", id, p)
	}
	return nil
}

// audiences are the audiences whose tokens register indexes.
var audiences = []string{custos.OrgOperator, custos.OrgCustodian}

// tokenOf stands for the token of subject id's email handed to audience.
func tokenOf(audience, id string) string { return "tk_" + audience + "_" + id }

// refsOf returns the token refs of subject id's record, indexed under the
// current KEK, their tokens sealed under k.
func refsOf(ctx context.Context, v *Vault, k *DataKey, id string) ([]custos.TokenRef, error) {
	var refs []custos.TokenRef
	for _, aud := range audiences {
		kek, index, err := v.IndexToken(ctx, tokenOf(aud, id))
		if err != nil {
			return nil, err
		}
		x := custos.TokenRef{Index: index, KEKID: kek, Audience: aud, Subject: id, Collection: "users", Record: "r-" + id, Field: "email"}
		if x.Sealed, err = k.SealTokenRef(x, tokenOf(aud, id)); err != nil {
			return nil, err
		}
		refs = append(refs, x)
	}
	return refs, nil
}

// findTokens checks that every token of subject id is found, pointing to
// its record.
func findTokens(ctx context.Context, v *Vault, st custos.Store, id string) error {
	for _, aud := range audiences {
		refs, err := v.FindTokenRefs(ctx, st, tokenOf(aud, id))
		if err != nil {
			return err
		}
		if len(refs) != 1 || refs[0].Audience != aud || refs[0].Record != "r-"+id {
			return fmt.Errorf("token of %s for %s found %d refs: %+v", id, aud, len(refs), refs)
		}
	}
	return nil
}

// register stores subject id with one sealed record and its token refs, as
// a writer does: refs indexed by IndexToken, then kept indexed under the
// current KEK by RefreshTokenRefs.
func register(ctx context.Context, v *Vault, st custos.Store, id string) error {
	s, _, err := v.Register(ctx, st, custos.Subject{ID: id, Residency: "US"})
	if err != nil {
		return err
	}
	k, err := v.Key(ctx, s, readReason(id))
	if errors.Is(err, custos.ErrKeyDestroyed) {
		// Rotated between Register and Key: read again.
		if s, err = st.Subject(ctx, id); err == nil {
			k, err = v.Key(ctx, s, readReason(id))
		}
	}
	if err != nil {
		return err
	}
	sealed, err := k.Seal("users", "r-"+id, []byte("email of "+id))
	if err != nil {
		return err
	}
	refs, err := refsOf(ctx, v, k, id)
	if err != nil {
		return err
	}
	_, err = st.PutRecord(ctx, custos.SealedRecord{Collection: "users", ID: "r-" + id, Subject: id, Sealed: sealed}, refs)
	if err != nil {
		return err
	}
	return v.RefreshTokenRefs(ctx, st, k, refs)
}

func checkAllOpen(t testing.TB, v *Vault, st custos.Store, ids []string) {
	t.Helper()
	for _, id := range ids {
		if err := openRecord(context.Background(), v, st, id); err != nil {
			t.Fatalf("subject %s: %v", id, err)
		}
		if err := findTokens(context.Background(), v, st, id); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRotate(t *testing.T) {
	ctx := context.Background()
	kr, v, st, ids := populated(t, 1201)
	old := kr.Current()
	before, _ := st.Record(ctx, "users", "r-u00007")

	var calls int
	rep, err := Rotate(ctx, st, kr, func(rewrapped, seen int) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if rep.NewKEK == old || rep.NewKEK != kr.Current() || rep.Rewrapped != 1201 || rep.Subjects != 1201 ||
		rep.Reindexed != 2402 || len(rep.Destroyed) != 1 || rep.Destroyed[0] != old {
		t.Fatalf("report %+v, old KEK %s", rep, old)
	}
	if calls != 6 { // three pages, two walks
		t.Errorf("progress called %d times, want 6", calls)
	}
	if got := kr.KEKs(); len(got) != 1 || got[0] != rep.NewKEK {
		t.Errorf("KEKs after rotation: %v", got)
	}
	for _, id := range ids {
		if s, _ := st.Subject(ctx, id); s.Key.KEKID != rep.NewKEK {
			t.Fatalf("subject %s under %s after rotation", id, s.Key.KEKID)
		}
	}
	checkRefsUnder(t, st, rep.NewKEK, 2402)
	after, _ := st.Record(ctx, "users", "r-u00007")
	if !sameRecord(before, after) {
		t.Error("rotation changed a record")
	}
	checkAllOpen(t, v, st, ids)
	if n := kr.Unwraps()[""]; n != 1201 {
		t.Errorf("%d custodial unwraps counted, want 1201", n)
	}
}

// checkRefsUnder checks that st holds n token refs, all under kek.
func checkRefsUnder(t testing.TB, st *memStore, kek string, n int) {
	t.Helper()
	st.mu.Lock()
	defer st.mu.Unlock()
	stored := 0
	for _, refs := range st.refs {
		stored += len(refs)
		for _, x := range refs {
			if x.KEKID != kek {
				t.Fatalf("token ref %s/%s/%s under %s, want %s", x.Record, x.Audience, x.Field, x.KEKID, kek)
			}
		}
	}
	if stored != n {
		t.Errorf("%d token refs stored, want %d", stored, n)
	}
}

func sameRecord(a, b custos.SealedRecord) bool {
	return string(a.Sealed) == string(b.Sealed) && string(a.Clear) == string(b.Clear)
}

// TestCryptoShredding is the property erasure rests on: once a subject is
// erased and the keys rotated, a backup of the store taken before the
// erasure no longer yields the subject's data key, while every other
// subject still opens from the live store.
func TestCryptoShredding(t *testing.T) {
	ctx := context.Background()
	path := newKeyringFile(t)
	kr := openKeyring(t, path)
	v := New(kr, "US")
	st := newMemStore()
	ids := populate(t, v, st, 20)
	erased := ids[7]

	backup := st.backup()
	records, err := st.DeleteSubject(ctx, erased)
	if err != nil || records != 1 {
		t.Fatalf("DeleteSubject = %d, %v", records, err)
	}
	// Erasure alone does not shred the backup: its key still unwraps.
	if err := openRecord(ctx, v, backup, erased); err != nil {
		t.Fatalf("before rotation the backup should still open: %v", err)
	}

	if _, err := Rotate(ctx, st, kr, nil); err != nil {
		t.Fatal(err)
	}

	s, err := backup.Subject(ctx, erased)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Key(ctx, s, readReason(erased))
	if !errors.Is(err, custos.ErrKeyDestroyed) {
		t.Fatalf("erased subject's key from the backup: %v, want ErrKeyDestroyed", err)
	}
	// Nor does a keyring opened afresh from the file hold it.
	fresh := New(openKeyring(t, path), "US")
	if _, err := fresh.Key(ctx, s, readReason(erased)); !errors.Is(err, custos.ErrKeyDestroyed) {
		t.Fatalf("erased subject's key from the backup, fresh keyring: %v", err)
	}
	checkAllOpen(t, v, st, without(ids, erased))
	// Every subject of the backup is shredded, not just the erased one:
	// the backup as a whole predates the rotation.
	if err := openRecord(ctx, v, backup, ids[0]); !errors.Is(err, custos.ErrKeyDestroyed) {
		t.Errorf("other subject from the backup: %v", err)
	}
}

// failingKeyring fails DestroyKEKs while fail is set.
type failingKeyring struct {
	*keys.Local
	fail bool
}

func (f *failingKeyring) DestroyKEKs(ctx context.Context, keep string) ([]string, error) {
	if f.fail {
		return nil, errInjected
	}
	return f.Local.DestroyKEKs(ctx, keep)
}

func TestRotateCrashSafety(t *testing.T) {
	ctx := context.Background()
	kr, v, st, ids := populated(t, 1100)

	// The store fails midway through the first walk.
	var rewraps int
	st.beforeRewrap = func(string) error {
		if rewraps++; rewraps > 700 {
			return errInjected
		}
		return nil
	}
	if _, err := Rotate(ctx, st, kr, nil); !errors.Is(err, errInjected) {
		t.Fatalf("Rotate with a failing store: %v", err)
	}
	if n := len(kr.KEKs()); n != 2 {
		t.Fatalf("%d KEKs after a failed rotation, want 2", n)
	}
	checkAllOpen(t, v, st, ids)

	// Then the keyring fails to destroy, after every key was rewrapped.
	st.beforeRewrap = nil
	fk := &failingKeyring{Local: kr, fail: true}
	if _, err := Rotate(ctx, st, fk, nil); !errors.Is(err, errInjected) {
		t.Fatalf("Rotate with a failing keyring: %v", err)
	}
	if n := len(kr.KEKs()); n != 3 {
		t.Fatalf("%d KEKs after a failed rotation, want 3", n)
	}
	checkAllOpen(t, v, st, ids)

	// Running Rotate again completes the rotation.
	fk.fail = false
	rep, err := Rotate(ctx, st, fk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Destroyed) != 3 || len(kr.KEKs()) != 1 {
		t.Fatalf("report %+v, KEKs %v", rep, kr.KEKs())
	}
	checkAllOpen(t, v, st, ids)
}

// TestRotateCatchesStragglers stores, behind the first walk, a subject
// whose key was wrapped under the old KEK, as a server that had not yet
// seen the new KEK would.
func TestRotateCatchesStragglers(t *testing.T) {
	ctx := context.Background()
	kr, v, st, ids := populated(t, 10)
	w, err := v.NewKey(ctx, "a-straggler")
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	st.beforeSubjects = func(after string) {
		if after != "" {
			once.Do(func() {
				st.sorted = nil
				st.subjects["a-straggler"] = custos.StoredSubject{Subject: custos.Subject{ID: "a-straggler", Residency: "US"}, Key: w}
			})
		}
	}
	rep, err := Rotate(ctx, st, kr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rewrapped != 11 || rep.Subjects != 11 {
		t.Errorf("report %+v", rep)
	}
	s, _ := st.Subject(ctx, "a-straggler")
	if _, err := v.Key(ctx, s, readReason("a-straggler")); err != nil {
		t.Fatalf("straggler lost: %v", err)
	}
	checkAllOpen(t, v, st, ids)
}

func TestRotateSkipsErasedAndRetriesLostSwaps(t *testing.T) {
	ctx := context.Background()
	kr, v, st, ids := populated(t, 10)
	// The same data key wrapped again, as another rotation would store it.
	aad := keyAAD("US", ids[5])
	dek, err := kr.Unwrap(ctx, st.subjects[ids[5]].Key, aad, readReason(ids[5]))
	if err != nil {
		t.Fatal(err)
	}
	other, err := kr.Wrap(ctx, dek, aad)
	if err != nil {
		t.Fatal(err)
	}
	st.beforeRewrap = func(id string) error {
		switch id {
		case ids[2]: // erased while being rewrapped
			delete(st.subjects, id)
			st.sorted = nil
		case ids[5]: // changed by someone else: the swap is lost once
			s := st.subjects[id]
			if s.Key.KEKID != other.KEKID || string(s.Key.Ciphertext) != string(other.Ciphertext) {
				s.Key = other
				st.subjects[id] = s
			}
		}
		return nil
	}
	rep, err := Rotate(ctx, st, kr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rewrapped != 9 || rep.Subjects != 9 {
		t.Errorf("report %+v", rep)
	}
	s, _ := st.Subject(ctx, ids[5])
	if s.Key.KEKID != rep.NewKEK {
		t.Errorf("subject changed meanwhile is under %s", s.Key.KEKID)
	}
	if _, err := v.Key(ctx, s, readReason(ids[5])); err != nil {
		t.Error(err)
	}
}

func TestRotateRefusesUnwrappableKey(t *testing.T) {
	ctx := context.Background()
	kr, _, st, _ := populated(t, 3)
	s := st.subjects["u00001"]
	s.Key.Ciphertext[20] ^= 1
	st.subjects["u00001"] = s
	_, err := Rotate(ctx, st, kr, nil)
	if err == nil {
		t.Fatal("Rotate succeeded with a key that does not unwrap")
	}
	// The subject is named by its position in the walk, never by its id.
	if strings.Contains(err.Error(), "u00001") || !strings.Contains(err.Error(), "subject 2 of the walk") {
		t.Errorf("error %q names the subject or not its position", err)
	}
	if n := len(kr.KEKs()); n != 2 {
		t.Errorf("a failed rotation destroyed KEKs: %d left", n)
	}
}

// TestRotateConcurrent rotates from one process (a keyring instance of its
// own) while a server registers subjects and opens records.
func TestRotateConcurrent(t *testing.T) {
	ctx := context.Background()
	path := newKeyringFile(t)
	server := New(openKeyring(t, path), "US")
	cli := openKeyring(t, path)
	st := newMemStore()
	ids := populate(t, server, st, 200)

	stop := make(chan struct{})
	var (
		wg      sync.WaitGroup
		created atomic.Int64
		mu      sync.Mutex
		all     = append([]string(nil), ids...)
	)
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if g%2 == 0 {
					if i >= 1000 {
						continue
					}
					id := fmt.Sprintf("n%d-%06d", g, i)
					if err := register(ctx, server, st, id); err != nil {
						t.Errorf("register %s during rotation: %v", id, err)
						return
					}
					created.Add(1)
					mu.Lock()
					all = append(all, id)
					mu.Unlock()
					continue
				}
				id := ids[i%len(ids)]
				err := openRecord(ctx, server, st, id)
				if errors.Is(err, custos.ErrKeyDestroyed) {
					// Read just before a rotation rewrapped it: read again.
					err = openRecord(ctx, server, st, id)
				}
				if err != nil {
					t.Errorf("open %s during rotation: %v", id, err)
					return
				}
			}
		})
	}
	for range 3 {
		if _, err := Rotate(ctx, st, cli, nil); err != nil {
			t.Error(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if created.Load() == 0 {
		t.Fatal("no subject registered during rotation")
	}
	t.Logf("%d subjects registered during 3 rotations", created.Load())
	checkAllOpen(t, server, st, all)
}
