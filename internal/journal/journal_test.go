package journal

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/custos/custos"
)

func open(t testing.TB) (*Journal, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, path
}

func TestRecordDurableAndIndexed(t *testing.T) {
	j, path := open(t)
	ctx := context.Background()
	for i := range 3 {
		idx, err := j.Record(ctx, custos.AuditEntry{Action: "read", Count: i})
		if err != nil || idx != uint64(i) {
			t.Fatalf("Record %d = %d, %v", i, idx, err)
		}
	}
	j.Close()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var e custos.AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Count != n {
			t.Fatalf("line %d: %v %+v", n, err, e)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("lines = %d, want 3", n)
	}
	j2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if idx, err := j2.Record(ctx, custos.AuditEntry{}); err != nil || idx != 3 {
		t.Fatalf("after reopen Record = %d, %v; want 3", idx, err)
	}
}

func TestTornLineCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, []byte("{\"action\":\"read\"}\n{\"action\":\"wr"), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if idx, err := j.Record(context.Background(), custos.AuditEntry{Action: "erase"}); err != nil || idx != 1 {
		t.Fatalf("Record = %d, %v; want 1", idx, err)
	}
	data, _ := os.ReadFile(path)
	if want := "{\"action\":\"read\"}\n"; string(data[:len(want)]) != want || data[len(data)-1] != '\n' {
		t.Fatalf("journal = %q", data)
	}
}

func TestConcurrentIndexesUnique(t *testing.T) {
	j, _ := open(t)
	const writers, each = 32, 50
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				idx, err := j.Record(context.Background(), custos.AuditEntry{Action: "read"})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[idx] {
					t.Errorf("index %d given twice", idx)
				}
				seen[idx] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != writers*each || j.Size() != writers*each {
		t.Fatalf("got %d indexes, size %d", len(seen), j.Size())
	}
}

func TestFailsClosed(t *testing.T) {
	j, _ := open(t)
	j.f.Close() // the disk goes away under the journal
	if _, err := j.Record(context.Background(), custos.AuditEntry{}); err == nil {
		t.Fatal("Record succeeded on a closed file")
	}
	if _, err := j.Record(context.Background(), custos.AuditEntry{}); err == nil {
		t.Fatal("Record succeeded after a failure")
	}
	if j.Err() == nil {
		t.Fatal("Err is nil after a failure")
	}
}

func TestClosed(t *testing.T) {
	j, _ := open(t)
	j.Close()
	if _, err := j.Record(context.Background(), custos.AuditEntry{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Record after Close = %v, want ErrClosed", err)
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	j, _ := open(b)
	b.SetParallelism(64)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := j.Record(context.Background(), custos.AuditEntry{Action: "read", Principal: "svc"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkRecordLone(b *testing.B) {
	j, _ := open(b)
	for b.Loop() {
		if _, err := j.Record(context.Background(), custos.AuditEntry{Action: "read"}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOneProcessAtATime checks that a second open of a journal in use
// fails instead of interleaving lines. flock locks are per open file, so a
// second Open in this process stands in for a second process.
func TestOneProcessAtATime(t *testing.T) {
	j, path := open(t)
	if _, err := Open(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open = %v, want ErrInUse", err)
	}
	j.Close()
	j2, err := Open(path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	j2.Close()
}
