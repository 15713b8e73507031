package custody

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/custos/custos"
)

// ApprovalTTL is how long an approval grant may be used.
const ApprovalTTL = 10 * time.Minute

// grant is what an approval says: who approved which exact request by whom,
// until when. It is signed with a key that lives only in this process.
type grant struct {
	ID        string `json:"id"`
	Approver  string `json:"approver"`
	Issuer    string `json:"issuer"`
	Requester string `json:"requester"`
	Digest    string `json:"digest"`
	Exp       int64  `json:"exp"`
}

// grants issues approval grants and accepts each once.
type grants struct {
	key  [32]byte
	mu   sync.Mutex
	used map[string]int64 // grant id → exp
}

func newGrants() *grants {
	g := &grants{used: map[string]int64{}}
	rand.Read(g.key[:])
	return g
}

// requestDigest pins a detokenization: its requester, tokens and
// justification. Each part is length-prefixed; tokens are sorted.
func requestDigest(requester string, tokens []string, j custos.Justification) string {
	h := sha256.New()
	put := func(s string) {
		h.Write(binary.AppendUvarint(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	put("custos approval v1")
	put(requester)
	put(j.Reason)
	put(j.Text)
	put(j.Ticket)
	sorted := slices.Sorted(slices.Values(tokens))
	h.Write(binary.AppendUvarint(nil, uint64(len(sorted))))
	for _, t := range sorted {
		put(t)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (g *grants) sign(gr grant) string {
	payload, _ := json.Marshal(gr)
	p := base64.RawURLEncoding.EncodeToString(payload)
	m := hmac.New(sha256.New, g.key[:])
	m.Write([]byte(p))
	return p + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var errGrant = errors.New("approval not valid for this request")

// accept checks a grant against the request it must approve and spends it.
func (g *grants) accept(s string, requester, digest string, now time.Time) (grant, error) {
	p, sig, ok := strings.Cut(s, ".")
	if !ok || len(s) > 2048 {
		return grant{}, errGrant
	}
	want := hmac.New(sha256.New, g.key[:])
	want.Write([]byte(p))
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, want.Sum(nil)) {
		return grant{}, errGrant
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return grant{}, errGrant
	}
	var gr grant
	if err := json.Unmarshal(payload, &gr); err != nil {
		return grant{}, errGrant
	}
	if gr.Requester != requester || gr.Digest != digest || now.Unix() >= gr.Exp || gr.Approver == requester {
		return grant{}, errGrant
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, spent := g.used[gr.ID]; spent {
		return grant{}, errGrant
	}
	for id, exp := range g.used {
		if now.Unix() >= exp {
			delete(g.used, id)
		}
	}
	g.used[gr.ID] = gr.Exp
	return gr, nil
}

func newGrantID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
