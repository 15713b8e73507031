package schema_test

import (
	"encoding/json"
	"fmt"

	"github.com/custos/custos/internal/schema"
)

func ExampleCollection_Decode() {
	s, err := schema.Parse("schema.yaml", []byte(`
version: 1
collections:
  users:
    subject: id
    fields:
      id:    {type: id, class: protected}
      email: {type: email, class: protected}
      age:   {type: int, class: protected}
`))
	if err != nil {
		panic(err)
	}
	users, _ := s.Collection("users")
	v, err := users.Decode(map[string]json.RawMessage{"id": []byte(`"u1"`), "age": []byte(`42`)})
	fmt.Println(v, err)
	_, err = users.Decode(map[string]json.RawMessage{"id": []byte(`"u1"`), "email": []byte(`"ada at example.com"`)})
	fmt.Println(err)
	// Output:
	// map[age:42 id:u1] <nil>
	// invalid_field: users.email: want an email address: local@domain.tld, no spaces, at most 254 bytes
}
