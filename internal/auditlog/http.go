package auditlog

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
)

// Cache-Control of each kind of resource. A full tile or entry bundle never
// changes; a partial one never changes either but is removed once the full
// one exists; the checkpoint changes every checkpoint interval.
const (
	cacheCheckpoint = "no-cache"
	cacheFull       = "public, max-age=31536000, immutable"
	cachePartial    = "public, max-age=60"
)

// Handler serves the log read-only at the C2SP tlog-tiles paths relative to
// where it is mounted: "checkpoint", "tile/<L>/<N>[.p/<W>]" and
// "tile/entries/<N>[.p/<W>]" (mount it with http.StripPrefix). It answers
// GET and HEAD only, and 404 for any path that is not the canonical
// encoding of such a resource: no listing, no other file of the directory.
func (l *Log) Handler() http.Handler {
	return http.HandlerFunc(l.serve)
}

func (l *Log) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, cache, ok := resource(r)
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if name == layout.CheckpointPath {
		l.serveCheckpoint(w, r)
		return
	}
	f, err := l.root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if err != nil {
		l.logger.Error("couldn't serve audit log resource", slog.String("path", name), slog.Any("err", err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", cache)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// serveCheckpoint serves the checkpoint chosen by servedCheckpoint. It
// sends no Last-Modified: cosignatures change the body without changing
// the file, so a client must never be told its copy is current by date.
func (l *Log) serveCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, _, err := l.ServedCheckpoint(r.Context())
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if err != nil {
		l.logger.Error("couldn't serve audit checkpoint", slog.Any("err", err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", cacheCheckpoint)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(cp))
}

// resource returns the file a request names and its Cache-Control.
func resource(r *http.Request) (name, cache string, ok bool) {
	if r.URL.RawPath != "" {
		return "", "", false
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	if p == layout.CheckpointPath {
		return p, cacheCheckpoint, true
	}
	partial, ok := parseTilePath(p)
	if !ok {
		return "", "", false
	}
	if partial {
		return p, cachePartial, true
	}
	return p, cacheFull, true
}

// parseTilePath reports whether p is the canonical path of a hash tile or
// an entry bundle, and whether that resource is partial.
func parseTilePath(p string) (partial, ok bool) {
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return false, false
	}
	kind, index, ok := strings.Cut(rest, "/")
	if !ok {
		return false, false
	}
	n, w, err := layout.ParseTileIndexPartial(index)
	if err != nil {
		return false, false
	}
	var canon string
	if kind == "entries" {
		canon = layout.EntriesPath(n, w)
	} else {
		level, err := layout.ParseTileLevel(kind)
		if err != nil {
			return false, false
		}
		canon = layout.TilePath(level, n, w)
	}
	return w != 0, canon == p
}
