package ticket

import "errors"

// ErrNotFound is the one "no such thing" of the domain: a project, ticket,
// message, attachment, ledger row or dead letter that does not exist. The
// store returns it (store.ErrNotFound is the same value) and the API answers
// it with 404, so no layer translates it.
var ErrNotFound = errors.New("not found")
