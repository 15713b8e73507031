package custody_test

import (
	"context"
	"errors"
	"testing"

	"github.com/custos/custos"
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
