package sandbox

import (
	"bytes"
	"io"
	"testing"
)

func TestMemoryLimiter(t *testing.T) {
	grow := func(t *testing.T, m *memoryLimiter) {
		t.Helper()
		b := m.Reallocate(pageSize)
		b[0] = 7
		b = m.Reallocate(3 * pageSize)
		if len(b) != 3*pageSize || b[0] != 7 || b[len(b)-1] != 0 {
			t.Fatalf("grown memory: len %d, first %d, last %d", len(b), b[0], b[len(b)-1])
		}
		if m.refused {
			t.Fatal("refused within the limit")
		}
		if m.Reallocate(4*pageSize) != nil || !m.refused {
			t.Fatal("grew past the limit")
		}
		m.Free()
	}
	t.Run("reserved", func(t *testing.T) {
		m := &memoryLimiter{limit: 3 * pageSize}
		m.Allocate(pageSize, 1<<32)
		grow(t, m)
	})
	t.Run("heap", func(t *testing.T) {
		grow(t, &memoryLimiter{limit: 3 * pageSize})
	})
}

// TestMemoryPool checks that a memory handed to a second instance holds
// nothing of the first.
func TestMemoryPool(t *testing.T) {
	pool := &memoryPool{}
	defer pool.close()
	const limit = 8 * pageSize
	first := &memoryLimiter{limit: limit, pool: pool}
	first.Allocate(pageSize, limit)
	b := first.Reallocate(3 * pageSize)
	for i := range b {
		b[i] = 0xa5
	}
	mapped := first.mapped
	first.Free()
	second := &memoryLimiter{limit: limit, pool: pool}
	second.Allocate(pageSize, limit)
	if mapped && !second.mapped {
		t.Fatal("the reservation was not reused")
	}
	b = second.Reallocate(limit)
	if i := bytes.IndexFunc(b, func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("byte %d of the second instance's memory is not zero", i)
	}
	// Another limit gets another reservation.
	if got := pool.get(2 * limit); got != nil {
		t.Errorf("a reservation of %d bytes for a limit of %d", cap(got), 2*limit)
	}
	second.Free()
	// Memory over maxPooledUsed goes back to the system.
	big := &memoryLimiter{limit: 2 * maxPooledUsed, pool: pool}
	big.Allocate(pageSize, big.limit)
	big.Reallocate(maxPooledUsed + pageSize)
	big.Free()
	if got := pool.get(big.limit); got != nil {
		t.Error("a memory over maxPooledUsed was kept")
	}
}

func TestCapped(t *testing.T) {
	c := capped{max: 5}
	for _, s := range []string{"abc", "defg", "hij"} {
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if string(c.b) != "abcde" {
		t.Errorf("kept %q, want %q", c.b, "abcde")
	}
}

func TestSeededRandom(t *testing.T) {
	read := func(seed uint64) []byte {
		b := make([]byte, 32)
		io.ReadFull(seededRandom(seed), b)
		return b
	}
	if !bytes.Equal(read(1), read(1)) {
		t.Error("one seed, two streams")
	}
	if bytes.Equal(read(1), read(2)) {
		t.Error("two seeds, one stream")
	}
}
