package custody_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/custody/custodytest"
)

// TestEraseNeedsItsRotation checks that an erasure whose key rotation
// cannot be scheduled erases nothing: a receipt is never given for an
// erasure that old copies would not see.
func TestEraseNeedsItsRotation(t *testing.T) {
	env := custodytest.New(t, custodytest.Options{OnErase: func() error { return errors.New("disk full") }})
	ctx := context.Background()
	if _, err := env.Service.Register(ctx, svc, custos.Subject{ID: "u1", Residency: "US"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.Service.Write(ctx, svc, "users", "u1", raw(ada)); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Service.Erase(ctx, svc, "u1"); custos.ErrorCode(err) != custos.CodeUnavailable {
		t.Fatalf("Erase = %v, want unavailable", err)
	}
	r, err := env.Service.Read(ctx, staff, "users", "u1")
	if err != nil || string(r.Fields["email"].Value) != `"ada@example.com"` {
		t.Fatalf("record after a refused erasure: %+v, %v", r.Fields["email"], err)
	}
}

// TestHistory checks that a subject's access history lists the entries
// about it — reads by each party, the erasure — by index, with nothing
// about other subjects, and only for the custodian.
func TestHistory(t *testing.T) {
	env := custodytest.New(t, custodytest.Options{})
	ctx := context.Background()
	for _, id := range []string{"u1", "u2"} {
		if _, err := env.Service.Register(ctx, svc, custos.Subject{ID: id, Residency: "US"}); err != nil {
			t.Fatal(err)
		}
		f := raw(ada)
		f["id"] = []byte(`"` + id + `"`)
		if _, _, err := env.Service.Write(ctx, svc, "users", id, f); err != nil {
			t.Fatal(err)
		}
	}
	r1, _ := env.Service.Read(ctx, engineer, "users", "u1")
	env.Service.Read(ctx, staff, "users", "u2")
	if _, err := env.Service.Erase(ctx, svc, "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Service.History(ctx, engineer, "u1"); custos.ErrorCode(err) != custos.CodeForbidden {
		t.Fatalf("engineer reading history: %v", err)
	}
	h, err := env.Service.History(ctx, staff, "u1")
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range h.Accesses {
		actions = append(actions, a.Action+"/"+a.Org)
		if a.Action == "read" && a.Index != r1.AuditIndex {
			t.Errorf("u1's read is listed at %d, was recorded at %d", a.Index, r1.AuditIndex)
		}
	}
	// The engineer's refused request for the history is about u1 too.
	want := []string{"register/operator", "write/operator", "read/operator", "erase/operator", "read-history/operator"}
	if !slices.Equal(actions, want) {
		t.Fatalf("u1's history = %v, want %v", actions, want)
	}
	if h.AuditIndex <= h.Accesses[len(h.Accesses)-1].Index {
		t.Fatal("the history request itself was not recorded after the entries it lists")
	}
}

// TestJustificationStaysOffPersonalData checks that the fields of a
// justification that go on the public log cannot carry an address.
func TestJustificationStaysOffPersonalData(t *testing.T) {
	env := custodytest.New(t, custodytest.Options{})
	ctx := context.Background()
	j := custos.Justification{Reason: "fraud", Text: "review", Ticket: "ada@example.com"}
	if _, err := env.Service.Detokenize(ctx, staff, custody.Detokenization{Tokens: []string{"tk_x"}, Justification: j, BreakGlass: true}); custos.ErrorCode(err) != custos.CodeInvalidRequest {
		t.Fatalf("ticket holding an address: %v", err)
	}
	j.Ticket = "T-1"
	if _, err := env.Service.Approve(ctx, staff, custody.ApprovalRequest{Requester: "Ada Lovelace", Tokens: []string{"tk_x"}, Justification: j}); custos.ErrorCode(err) != custos.CodeInvalidRequest {
		t.Fatalf("requester that is not a principal id: %v", err)
	}
}
