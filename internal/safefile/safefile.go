// Package safefile writes files so that a crash leaves either the old state
// or the new one, never a part of a file: data is written to a temporary
// file in the same directory, synced, put in place by a link or a rename,
// and the directory is synced so that the name survives too. It reads
// files of bounded size, so that a file grown by mistake or malice cannot
// exhaust memory.
//
// It trusts the file system to honour fsync.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Create writes data to a new file at path with mode, and fails with an
// error wrapping fs.ErrExist if path exists: it never replaces a file.
func Create(path string, data []byte, mode fs.FileMode) error {
	return put(path, data, mode, true)
}

// Replace writes data to path with mode, replacing any file there.
func Replace(path string, data []byte, mode fs.FileMode) error {
	return put(path, data, mode, false)
}

func put(path string, data []byte, mode fs.FileMode, exclusive bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed; drops the extra link after Link
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if exclusive {
		err = os.Link(tmp, path)
	} else {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: refusing to overwrite it: %w", path, fs.ErrExist)
		}
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes the names in dir durable: a file created or renamed there
// survives a crash once SyncDir returns nil.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadCapped reads the file at path, of at most limit bytes, reading no
// more than limit+1 bytes whatever the file is.
func ReadCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
