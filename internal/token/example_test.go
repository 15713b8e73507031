package token_test

import (
	"fmt"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/token"
)

func ExampleMask() {
	for _, v := range []struct {
		typ custos.FieldType
		v   any
	}{
		{custos.TypeEmail, "alice@example.com"},
		{custos.TypePhone, "+1 (555) 010-9999"},
		{custos.TypeDate, "1990-04-17"},
		{custos.TypeIP, "2001:db8:1:2::7"},
	} {
		m, _ := token.Mask(v.typ, v.v)
		fmt.Println(m)
	}
	// Output:
	// a***@example.com
	// +* (***) ***-**99
	// 1990-**-**
	// 2001:db8:1::/48
}
