package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"

	mail "github.com/wneessen/go-mail"
)

// ErrAuth is wrapped into every error caused by the SMTP server refusing our
// credentials (535 and other 5xx replies to AUTH, no usable mechanism, AUTH
// not offered). The caller may mark the project's SMTP configuration broken:
// no retry helps until an operator fixes it.
var ErrAuth = errors.New("smtp authentication failed")

// Error is a failed delivery step. It says which step failed and whether a
// retry can help; Permanent reads it.
type Error struct {
	Step      string // e.g. "connect", "auth", "send", "render"
	Permanent bool   // true when a retry cannot help
	Err       error
}

func (e *Error) Error() string {
	kind := "temporary, a retry may help"
	if e.Permanent {
		kind = "permanent, a retry will not help"
	}
	return fmt.Sprintf("%s (%s): %v", e.Step, kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func permanentf(step, format string, args ...any) *Error {
	return &Error{Step: step, Permanent: true, Err: fmt.Errorf(format, args...)}
}

// Permanent reports whether err is a failure that no retry can cure:
//   - a 5xx reply to MAIL, RCPT or DATA (a go-mail SendError that is not temporary),
//   - an authentication failure (ErrAuth) or a 5xx reply while connecting,
//   - a recipient address that does not parse,
//   - an unknown project or a notification that cannot be rendered.
//
// 4xx replies, network errors, timeouts and cancellations are temporary.
// Errors not produced by this package (e.g. from the Store) count as
// temporary unless they carry one of the above.
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Permanent
	}
	if errors.Is(err, ErrAuth) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var se *mail.SendError
	if errors.As(err, &se) {
		return sendErrorPermanent(se)
	}
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return tp.Code >= 500
	}
	return false
}

// sendErrorPermanent classifies a go-mail SendError: by the server's reply
// code where there is one, else by the step (a message we cannot address is
// permanent, a broken connection is not). go-mail's own IsTemp looks at the
// first character of the error text only, which calls "not connected"
// permanent; the reply code is more reliable.
func sendErrorPermanent(se *mail.SendError) bool {
	switch code := se.ErrorCode(); {
	case code >= 500:
		return true
	case code >= 400:
		return false
	}
	switch se.Reason {
	case mail.ErrGetSender, mail.ErrGetRcpts, mail.ErrNoUnencoded:
		return true
	}
	return false
}

// connectError classifies a failure to connect, greet, EHLO or STARTTLS.
func connectError(err error) *Error {
	var tp *textproto.Error
	perm := errors.As(err, &tp) && tp.Code >= 500
	return &Error{Step: "connect", Permanent: perm, Err: err}
}

// authError classifies a failure of SMTP AUTH. A 4xx reply (454 temporary
// authentication failure) and network errors are temporary; everything
// else is a configuration problem and wraps ErrAuth.
func authError(err error) *Error {
	var tp *textproto.Error
	if errors.As(err, &tp) && tp.Code < 500 {
		return &Error{Step: "auth", Err: err}
	}
	var ne net.Error
	if !errors.As(err, &tp) && (errors.As(err, &ne) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return &Error{Step: "auth", Err: err}
	}
	return &Error{Step: "auth", Permanent: true, Err: fmt.Errorf("%w: %w", ErrAuth, err)}
}

// sendError classifies a failure while sending a message on a session.
func sendError(err error) *Error {
	return &Error{Step: "send", Permanent: Permanent(err), Err: err}
}
