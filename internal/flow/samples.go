package flow

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Sample is a record an export released, kept for the monitor: exactly the
// line that left (tokens for every field declared token) and the index of
// the audit entry that covered its page.
type Sample struct {
	Flow       string          `json:"flow"`
	AuditIndex uint64          `json:"audit_index"`
	Time       time.Time       `json:"time"`
	Record     json.RawMessage `json:"record"`
}

// MaxSamples caps the samples one List returns.
const MaxSamples = 1000

// FileSamples keeps samples in a directory, one file of JSON lines per
// flow, appended to and synced before Add returns. It is safe for
// concurrent use by one process.
type FileSamples struct {
	dir string
	mu  sync.Mutex
}

// NewFileSamples returns the sample store in dir, creating it.
func NewFileSamples(dir string) (*FileSamples, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("couldn't create sample store: %w", err)
	}
	return &FileSamples{dir: dir}, nil
}

func (s *FileSamples) path(flow string) string { return filepath.Join(s.dir, flow+".ndjson") }

// Add appends samples of flow durably. Flow names are checked by Parse, so
// they are safe file names.
func (s *FileSamples) Add(_ context.Context, flow string, samples []Sample) error {
	if len(samples) == 0 {
		return nil
	}
	var buf []byte
	for _, x := range samples {
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Errorf("couldn't encode sample: %w", err)
		}
		buf = append(append(buf, b...), '\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(s.path(flow), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("couldn't open sample store: %w", err)
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("couldn't write samples: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("couldn't sync samples: %w", err)
	}
	return f.Close()
}

// List returns up to limit samples of flow whose audit index is after
// after (all when after is 0), oldest first; MaxSamples when limit is not
// positive or larger.
func (s *FileSamples) List(_ context.Context, flow string, after uint64, limit int) ([]Sample, error) {
	if limit <= 0 || limit > MaxSamples {
		limit = MaxSamples
	}
	f, err := os.Open(s.path(flow))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't open sample store: %w", err)
	}
	defer f.Close()
	var out []Sample
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() && len(out) < limit {
		var x Sample
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			// A torn last line of a crash is not a sample.
			continue
		}
		if after == 0 || x.AuditIndex > after {
			out = append(out, x)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read samples: %w", err)
	}
	return out, nil
}
