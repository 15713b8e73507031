package witness

import (
	"bytes"
	"errors"
	"net/http"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// specRequest is the example body of tlog-witness.
const specRequest = `old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=
`

// specResponse is the example 200 body of tlog-witness.
const specResponse = `— witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSvVjyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==
— witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiOlVlbQNt64vWhO+DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==
— witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrKbYKA7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==
`

func TestParseSpecRequest(t *testing.T) {
	r, err := parseRequest([]byte(specRequest))
	if err != nil {
		t.Fatal(err)
	}
	if r.oldSize != 20852014 || len(r.proof) != 4 {
		t.Fatalf("old %d, %d proof lines", r.oldSize, len(r.proof))
	}
	_, err = note.Open(r.checkpoint, note.VerifierList())
	e, ok := errors.AsType[*note.UnverifiedNoteError](err)
	if !ok {
		t.Fatalf("checkpoint is not a note with unknown signatures: %v", err)
	}
	cp, err := parseCheckpoint(e.Note.Text)
	if err != nil || cp.origin != "example.com/behind-the-sofa" || cp.size != 20852163 {
		t.Fatalf("checkpoint %+v, %v", cp, err)
	}
	if got := encodeRequest(r.oldSize, r.proof, r.checkpoint); string(got) != specRequest {
		t.Fatalf("re-encoded request differs:\n%s", got)
	}
}

func TestParseResponse(t *testing.T) {
	sigs, err := parseResponse(http.StatusOK, "text/plain", []byte(specResponse))
	if err != nil || len(sigs) != 3 {
		t.Fatalf("spec response: %d lines, %v", len(sigs), err)
	}
	if !bytes.Equal(bytes.Join(sigs, nil), []byte(specResponse)) {
		t.Fatal("lines don't add up to the response")
	}
	for _, tc := range []struct {
		name   string
		status int
		ctype  string
		body   string
		size   uint64 // for a ConflictError
		code   int    // for a ResponseError
	}{
		{"conflict", 409, "text/x.tlog.size", "42\n", 42, 0},
		{"conflict with params", 409, "text/x.tlog.size; charset=utf-8", "0\n", 0, 0},
		{"fork", 409, "text/plain", "other root\n", 0, 409},
		{"conflict no newline", 409, "text/x.tlog.size", "42", 0, -1},
		{"conflict leading zero", 409, "text/x.tlog.size", "042\n", 0, -1},
		{"unknown log", 404, "text/plain", "unknown log\n", 0, 404},
		{"empty 200", 200, "", "", 0, -1},
		{"no newline", 200, "", "— w AAAAAAAA", 0, -1},
		{"no dash", 200, "", "- w AAAAAAAA\n", 0, -1},
		{"bad base64", 200, "", "— w !!!!\n", 0, -1},
		{"short signature", 200, "", "— w AAAA\n", 0, -1},
		{"bad name", 200, "", "— w+1 AAAAAAAA\n", 0, -1},
		{"blank line", 200, "", specResponse + "\n", 0, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseResponse(tc.status, tc.ctype, []byte(tc.body))
			c, isConflict := errors.AsType[*ConflictError](err)
			re, isResp := errors.AsType[*ResponseError](err)
			switch {
			case tc.code == 0 && (!isConflict || c.Size != tc.size):
				t.Fatalf("got %v, want conflict at %d", err, tc.size)
			case tc.code > 0 && (!isResp || re.StatusCode != tc.code):
				t.Fatalf("got %v, want status %d", err, tc.code)
			case tc.code < 0 && (err == nil || isConflict || isResp):
				t.Fatalf("got %v, want a malformed-answer error", err)
			}
		})
	}
}

func TestAttachCosignatures(t *testing.T) {
	cp := []byte("o\n1\nh\n\n— o AAAAAAAA\n")
	got := AttachCosignatures(cp, []byte("— w1 BBBBBBBB\n"), nil, []byte("— w2 CCCCCCCC"))
	want := "o\n1\nh\n\n— o AAAAAAAA\n— w1 BBBBBBBB\n— w2 CCCCCCCC\n"
	if string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if string(cp) != "o\n1\nh\n\n— o AAAAAAAA\n" {
		t.Fatal("AttachCosignatures changed its input")
	}
}

// FuzzAddCheckpointRequest checks that the request parser never panics,
// stays within its bounds, and is not malleable: whatever it accepts
// re-encodes to the same bytes.
func FuzzAddCheckpointRequest(f *testing.F) {
	f.Add([]byte(specRequest))
	f.Add([]byte("old 0\n\nexample.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— example.com/log AAAAAAAA\n"))
	f.Add([]byte("old 01\n\nx"))
	f.Add([]byte("old 1\nAAAA\n\nx"))
	f.Add([]byte("old 18446744073709551615\n\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseRequest(body)
		if err != nil {
			return
		}
		if len(r.proof) > MaxProofLines || len(body) > MaxRequestSize || len(r.checkpoint) == 0 {
			t.Fatalf("accepted out of bounds: %d proof lines, %d bytes", len(r.proof), len(body))
		}
		for _, h := range r.proof {
			if len(h) != hashSize {
				t.Fatalf("accepted a %d-byte hash", len(h))
			}
		}
		if r.oldSize == 0 && len(r.proof) > 0 {
			t.Fatal("accepted a proof from size 0")
		}
		if got := encodeRequest(r.oldSize, r.proof, r.checkpoint); !bytes.Equal(got, body) {
			t.Fatalf("re-encoding differs:\n%q\n%q", got, body)
		}
	})
}
