package tilestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
)

const (
	dirPerm  = 0o755
	filePerm = 0o644
	// tmpSuffix names the file a resource is written to before it is
	// renamed into place. The handlers serve canonical tile paths only,
	// so a temporary file is never served; one left by a crash is
	// overwritten the next time.
	tmpSuffix = ".tmp"
)

// Parallelism of writing and of syncing a batch's files. Creating a file
// costs system CPU, of which there are few cores, and more writers than
// cores only contend for the directory; a sync mostly waits for the disk,
// and concurrent syncs share the file system's journal commits.
var (
	writers = 2
	syncers = 32
)

// maxKnownDirs bounds the directories dirs remembers.
const maxKnownDirs = 1 << 12

// dirs remembers which directories exist, so that writing a file costs no
// lookup of its directory, and collects those whose entries changed and
// must be synced.
type dirs struct {
	root    string
	mu      sync.Mutex
	known   map[string]bool
	changed map[string]bool
}

func newDirs(root string) *dirs {
	return &dirs{root: root, known: map[string]bool{".": true}, changed: map[string]bool{}}
}

// ensure creates dir, relative to the root, and its missing parents. The
// parent of each directory it meets for the first time is marked changed,
// whether it created it or found it: one it found may have been created,
// and not synced, by a process that crashed.
func (d *dirs) ensure(dir string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ensureLocked(dir)
}

func (d *dirs) ensureLocked(dir string) error {
	if d.known[dir] {
		return nil
	}
	if len(d.known) > maxKnownDirs {
		clear(d.known) // each batch meets new directories: forget the old
		d.known["."] = true
	}
	parent := path.Dir(dir)
	if err := d.ensureLocked(parent); err != nil {
		return err
	}
	err := os.Mkdir(filepath.Join(d.root, dir), dirPerm)
	if errors.Is(err, fs.ErrExist) {
		if fi, serr := os.Stat(filepath.Join(d.root, dir)); serr != nil || !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
	} else if err != nil {
		return err
	}
	d.changed[parent] = true
	d.known[dir] = true
	return nil
}

func (d *dirs) markChanged(dir string) {
	d.mu.Lock()
	d.changed[dir] = true
	d.mu.Unlock()
}

// takeChanged returns the directories marked changed and forgets them.
func (d *dirs) takeChanged() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.changed))
	for dir := range d.changed {
		out = append(out, dir)
	}
	clear(d.changed)
	return out
}

// forget drops what d knows, after a failure or a removal.
func (d *dirs) forget() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.known = map[string]bool{".": true}
	clear(d.changed)
}

// writeFiles writes files and makes them durable: each is written to a
// temporary file renamed into place, so a reader sees all of it or none;
// then every file and every directory whose entries changed is synced,
// all in parallel. pre, when not nil, is written and synced with them but
// not renamed: the caller renames it once writeFiles returns.
func writeFiles(d *dirs, files []file, pre *file) error {
	all := files
	if pre != nil {
		all = append(files[:len(files):len(files)], *pre)
	}
	fds := make([]*os.File, len(all))
	defer func() {
		for _, f := range fds {
			if f != nil {
				f.Close()
			}
		}
	}()
	err := parallel(len(all), writers, func(i int) error {
		var err error
		fds[i], err = writeFile(d, all[i], i < len(files))
		return err
	})
	if err != nil {
		return err
	}
	changed := d.takeChanged()
	return parallel(len(fds)+len(changed), syncers, func(i int) error {
		if i < len(fds) {
			if err := fds[i].Sync(); err != nil {
				return fmt.Errorf("couldn't sync %s: %w", all[i].path, err)
			}
			return nil
		}
		return syncDir(d.root, changed[i-len(fds)])
	})
}

// writeFile writes f to its temporary file and, if rename, renames it into
// place. It returns the open file, to be synced.
func writeFile(d *dirs, f file, rename bool) (*os.File, error) {
	dir := path.Dir(f.path)
	if err := d.ensure(dir); err != nil {
		return nil, fmt.Errorf("couldn't create directory for %s: %w", f.path, err)
	}
	name := filepath.Join(d.root, f.path)
	fd, err := os.OpenFile(name+tmpSuffix, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return nil, fmt.Errorf("couldn't create %s: %w", f.path, err)
	}
	if _, err := fd.Write(f.data); err != nil {
		fd.Close()
		return nil, fmt.Errorf("couldn't write %s: %w", f.path, err)
	}
	if rename {
		if err := os.Rename(name+tmpSuffix, name); err != nil {
			fd.Close()
			return nil, fmt.Errorf("couldn't write %s: %w", f.path, err)
		}
		d.markChanged(dir)
	}
	return fd, nil
}

// writeDurable replaces the file at p, relative to root, with data,
// atomically and durably.
func writeDurable(root, p string, data []byte) error {
	name := filepath.Join(root, p)
	f, err := os.OpenFile(name+tmpSuffix, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return fmt.Errorf("couldn't write %s: %w", p, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("couldn't write %s: %w", p, err)
	}
	return commitRename(root, p)
}

// commitRename renames the synced temporary file of p into place and syncs
// its directory.
func commitRename(root, p string) error {
	name := filepath.Join(root, p)
	if err := os.Rename(name+tmpSuffix, name); err != nil {
		return fmt.Errorf("couldn't write %s: %w", p, err)
	}
	return syncDir(root, path.Dir(p))
}

func syncDir(root, dir string) error {
	f, err := os.Open(filepath.Join(root, dir))
	if err != nil {
		return fmt.Errorf("couldn't sync directory %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("couldn't sync directory %s: %w", dir, err)
	}
	return nil
}

// parallel calls f(0) to f(n-1) from at most workers goroutines and returns
// the first error.
func parallel(n, workers int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		next  int
		first error
	)
	for range min(n, workers) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return first
}
