package mailbox

import (
	"errors"
	"fmt"
	"testing"
)

// tokenErr is a TokenSource failure that says whether a retry helps, as
// oauth.Error does.
type tokenErr bool

func (e tokenErr) Error() string   { return "token failure" }
func (e tokenErr) Transient() bool { return bool(e) }

func TestTemporaryAsksTheTokenSourcesError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"the token endpoint down is temporary", fmt.Errorf("%w: %w", errToken, tokenErr(true)), true},
		{"a refused grant is permanent", fmt.Errorf("%w: %w", errToken, tokenErr(false)), false},
		{"a token refused at login is ErrAuth, permanent", fmt.Errorf("authenticate XOAUTH2: %w: %w", ErrAuth, errors.New("NO")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Temporary(tc.err); got != tc.want {
				t.Fatalf("Temporary(%v) = %v; want %v", tc.err, got, tc.want)
			}
		})
	}
}
