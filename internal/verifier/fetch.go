package verifier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/custos/custos"
	"github.com/transparency-dev/tessera/api/layout"
)

const (
	// hashSize is the size of a SHA-256 node hash.
	hashSize = 32
	// maxTileSize caps a hash tile: 256 hashes.
	maxTileSize = layout.TileWidth * hashSize
	// maxBundleSize caps an entry bundle: 256 entries of at most
	// custos.MaxAuditEntrySize bytes, each with its two-byte length.
	maxBundleSize = layout.EntryBundleWidth * (2 + custos.MaxAuditEntrySize)
	// defaultTimeout bounds each request when Config gives no client.
	defaultTimeout = 60 * time.Second
)

// errMalformed marks a resource that is served but not as the log's
// format says.
var errMalformed = errors.New("malformed")

// errNotFound is returned when the server answers 404 for a resource; it
// is os.ErrNotExist to errors.Is.
var errNotFound error = notFoundError{}

type notFoundError struct{}

func (notFoundError) Error() string        { return "not found" }
func (notFoundError) Is(target error) bool { return target == os.ErrNotExist }

// fetcher reads log resources over HTTP, bounding every response and,
// optionally, the bytes of the whole run. It is safe for concurrent use.
type fetcher struct {
	base     *url.URL
	client   *http.Client
	maxBytes int64 // 0: no cap on the whole run
	fetched  atomic.Int64
}

func newFetcher(logURL string, c *http.Client, maxBytes int64) (*fetcher, error) {
	if !strings.HasSuffix(logURL, "/") {
		logURL += "/"
	}
	u, err := url.Parse(logURL)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse log URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("log URL %q is not http or https", logURL)
	}
	if c == nil {
		c = &http.Client{Timeout: defaultTimeout}
	}
	return &fetcher{base: u, client: c, maxBytes: maxBytes}, nil
}

// get fetches the resource at path p under the log URL, refusing a body
// larger than limit bytes.
func (f *fetcher) get(ctx context.Context, p string, limit int64) ([]byte, error) {
	u := f.base.JoinPath(p)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't fetch %s: %w", p, err)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("couldn't fetch %s: %w", p, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%s: %w", p, errNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("couldn't fetch %s: status %d", p, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't fetch %s: %w", p, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", p, errMalformed, limit)
	}
	if n := f.fetched.Add(int64(len(b))); f.maxBytes > 0 && n > f.maxBytes {
		return nil, fmt.Errorf("couldn't fetch %s: run downloaded more than %d bytes", p, f.maxBytes)
	}
	return b, nil
}

func (f *fetcher) checkpoint(ctx context.Context) ([]byte, error) {
	return f.get(ctx, layout.CheckpointPath, custos.MaxCheckpointSize)
}

// partialOrFull fetches the partial resource of width p, falling back to
// the full one when the partial one is gone (the tree grew since the
// checkpoint was read). It returns the path that answered and the width
// the resource must have.
func (f *fetcher) partialOrFull(ctx context.Context, path func(uint8) string, p uint8, limit int64) ([]byte, string, int, error) {
	if p > 0 {
		b, err := f.get(ctx, path(p), limit)
		if !errors.Is(err, os.ErrNotExist) {
			return b, path(p), int(p), err
		}
	}
	b, err := f.get(ctx, path(0), limit)
	return b, path(0), layout.TileWidth, err
}

// tile fetches a hash tile and checks it holds exactly the hashes its path
// promises. It has the signature of client.TileFetcherFunc.
func (f *fetcher) tile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	path := func(p uint8) string { return layout.TilePath(level, index, p) }
	b, got, width, err := f.partialOrFull(ctx, path, p, maxTileSize)
	if err != nil {
		return nil, err
	}
	if len(b) != width*hashSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, want %d", got, errMalformed, len(b), width*hashSize)
	}
	return b, nil
}

// bundle fetches an entry bundle and splits it. It returns the path that
// answered and the entries it holds.
func (f *fetcher) bundle(ctx context.Context, index uint64, p uint8) ([][]byte, string, error) {
	path := func(p uint8) string { return layout.EntriesPath(index, p) }
	b, got, width, err := f.partialOrFull(ctx, path, p, maxBundleSize)
	if err != nil {
		return nil, got, err
	}
	entries, err := parseBundle(b)
	if err != nil {
		return nil, got, fmt.Errorf("%s: %w: %w", got, errMalformed, err)
	}
	if len(entries) > width {
		return nil, got, fmt.Errorf("%s: %w: %d entries, want %d", got, errMalformed, len(entries), width)
	}
	return entries, got, nil
}
