package api_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/servicedesk/servicedesk/api"
)

func ExampleObfuscate() {
	fmt.Println(api.Obfuscate("alice@customer.test"))
	// Output: al***@cu***.test
}

func ExampleRedact() {
	fmt.Println(string(api.Redact([]byte(`{"from":"Alice <alice@customer.test>","text":"cc bob@mail.example.test\n"}`))))
	// Output: {"from":"Alice <al***@cu***.test>","text":"cc b***@ma***.test\n"}
}

func ExampleNew() {
	h := api.New(nil, []api.Token{{Name: "ops", Token: "change-me", Role: api.RoleAdmin}}, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/projects", nil))
	fmt.Println(rec.Code, rec.Header().Get("WWW-Authenticate"))
	fmt.Print(rec.Body)
	// Output:
	// 401 Basic realm="servicedesk", charset="UTF-8"
	// {"error":{"code":"unauthorized","message":"a valid token is required (Authorization: Bearer TOKEN, or basic auth with the token as password)"}}
}
