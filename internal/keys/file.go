package keys

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/custos/custos/internal/aead"
	"github.com/custos/custos/internal/safefile"
)

// The keyring file is a JSON object:
//
//	{
//	  "version": 1,
//	  "jurisdiction": "US",
//	  "current": "kek-20260102-0a1b2c3d",
//	  "keks": [{"id": "kek-20260102-0a1b2c3d", "created": "2026-01-02T03:04:05Z", "key": "<base64, 32 bytes>"}],
//	  "token_key": "<base64, 32 bytes>",
//	  "signing_key": "<base64, 32-byte Ed25519 seed>"
//	}
//
// Unknown fields are refused, so that a newer format is never half-read.
const fileVersion = 1

// maxFileSize bounds what Open reads: some eight thousand KEKs.
const maxFileSize = 1 << 20

type fileV1 struct {
	Version      int       `json:"version"`
	Jurisdiction string    `json:"jurisdiction"`
	Current      string    `json:"current"`
	KEKs         []fileKEK `json:"keks"`
	TokenKey     []byte    `json:"token_key"`
	SigningKey   []byte    `json:"signing_key"`
}

type fileKEK struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Key     []byte    `json:"key"`
}

// ring is one reading of the keyring file. It is never modified once
// published through Local.ring.
type ring struct {
	fi           os.FileInfo // of the file it was read from; nil before it is written
	jurisdiction string
	current      string
	keks         []*kek // in file order
	byID         map[string]*kek
	tokenKey     secret
	seed         secret
}

type kek struct {
	id      string
	created time.Time
	key     secret
	aead    cipher.AEAD
	index   secret // the token index key, derived from key
}

// tokenIndexInfo is the HKDF info of a KEK's token index key.
const tokenIndexInfo = "custos token index v1"

// makeKEK returns the KEK id with the given key, its AEAD and its token
// index key: HKDF-SHA256 of key, with no salt and info tokenIndexInfo.
func makeKEK(id string, created time.Time, key secret) (*kek, error) {
	a, err := aead.New(key)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key %s: %w", id, err)
	}
	index, err := hkdf.Key(sha256.New, key, nil, tokenIndexInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key %s: %w", id, err)
	}
	return &kek{id: id, created: created, key: key, aead: a, index: index}, nil
}

// validKEKID reports whether id has the form kek-YYYYMMDD-xxxxxxxx, with
// eight lower-case hex digits.
func validKEKID(id string) bool {
	if len(id) != len("kek-20060102-0a1b2c3d") || id[:4] != "kek-" || id[12] != '-' {
		return false
	}
	for i, c := range []byte(id[4:12] + id[13:]) {
		if c < '0' || c > '9' && (i < 8 || c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func validJurisdiction(j string) error {
	if len(j) != 2 || j[0] < 'A' || j[0] > 'Z' || j[1] < 'A' || j[1] > 'Z' {
		return fmt.Errorf("jurisdiction %q is not an ISO 3166-1 alpha-2 code such as US", j)
	}
	return nil
}

// parse decodes and validates a keyring file. Its errors never quote the
// file, which holds secrets.
func parse(data []byte) (*ring, error) {
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, errors.New("malformed keyring file")
	}
	if v.Version != fileVersion {
		return nil, fmt.Errorf("unsupported keyring version %d, want %d", v.Version, fileVersion)
	}
	var f fileV1
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil || d.More() {
		return nil, errors.New("malformed keyring file")
	}
	return newRing(&f)
}

func newRing(f *fileV1) (*ring, error) {
	if err := validJurisdiction(f.Jurisdiction); err != nil {
		return nil, err
	}
	if len(f.TokenKey) != 32 {
		return nil, errors.New("token key is not 32 bytes")
	}
	if len(f.SigningKey) != 32 {
		return nil, errors.New("signing key is not a 32-byte Ed25519 seed")
	}
	if len(f.KEKs) == 0 {
		return nil, errors.New("keyring holds no key-encryption key")
	}
	r := &ring{
		jurisdiction: f.Jurisdiction,
		current:      f.Current,
		byID:         make(map[string]*kek, len(f.KEKs)),
		tokenKey:     secret(f.TokenKey),
		seed:         secret(f.SigningKey),
	}
	for _, fk := range f.KEKs {
		if !validKEKID(fk.ID) {
			return nil, errors.New("malformed key-encryption key id")
		}
		if r.byID[fk.ID] != nil {
			return nil, fmt.Errorf("duplicate key-encryption key %s", fk.ID)
		}
		k, err := makeKEK(fk.ID, fk.Created, secret(fk.Key))
		if err != nil {
			return nil, err
		}
		r.keks = append(r.keks, k)
		r.byID[k.id] = k
	}
	if r.byID[r.current] == nil {
		return nil, errors.New("current key-encryption key is not in the keyring")
	}
	return r, nil
}

// marshal encodes r in the file format. The result holds secrets: the
// caller clears it once written.
func (r *ring) marshal() ([]byte, error) {
	f := fileV1{
		Version:      fileVersion,
		Jurisdiction: r.jurisdiction,
		Current:      r.current,
		TokenKey:     r.tokenKey,
		SigningKey:   r.seed,
	}
	for _, k := range r.keks {
		f.KEKs = append(f.KEKs, fileKEK{ID: k.id, Created: k.created.UTC(), Key: k.key})
	}
	b, err := json.MarshalIndent(&f, "", "\t")
	if err != nil {
		return nil, errors.New("couldn't encode keyring")
	}
	return append(b, '\n'), nil
}

// load reads and parses the keyring at path, refusing a file that group or
// others may access.
func load(path string) (*ring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't open keyring: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("couldn't open keyring: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keyring %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("keyring %s is accessible to group or others (mode %04o): run `chmod 600 %s`", path, perm, path)
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("keyring %s is larger than %d bytes", path, maxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read keyring: %w", err)
	}
	defer clear(data)
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("keyring %s is larger than %d bytes", path, maxFileSize)
	}
	r, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("couldn't read keyring %s: %w", path, err)
	}
	r.fi = fi
	return r, nil
}

// writeFile writes data to path atomically with mode 0600, refusing to
// overwrite a file when exclusive.
func writeFile(path string, data []byte, exclusive bool) error {
	write := safefile.Replace
	if exclusive {
		write = safefile.Create
	}
	err := write(path, data, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("keyring %s already exists: refusing to overwrite it", path)
	}
	if err != nil {
		return fmt.Errorf("couldn't write keyring: %w", err)
	}
	return nil
}

// sameFile reports whether a and b describe the same version of a file:
// the same inode, size and modification time. Every write renames a new
// file into place, so a changed keyring is a different inode.
func sameFile(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

func statFile(path string) (os.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't stat keyring: %w", err)
	}
	return fi, nil
}

// Format shows a keyring reading by KEK ids only.
func (r *ring) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "ring{jurisdiction=%s current=%s keks=%v}", r.jurisdiction, r.current, r.ids())
}

// Format shows a KEK by id only.
func (k *kek) Format(f fmt.State, verb rune) { fmt.Fprintf(f, "kek{%s}", k.id) }
