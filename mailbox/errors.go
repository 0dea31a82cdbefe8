package mailbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/emersion/go-imap/v2"
)

// Sentinels callers branch on. Both are permanent: retrying with the same
// configuration cannot help.
var (
	// ErrAuth means the server refused the login (AUTHENTICATIONFAILED or any
	// NO to LOGIN): a configuration problem.
	ErrAuth = errors.New("mailbox: login refused")
	// ErrNoMailbox means the folder does not exist (NONEXISTENT or a NO to
	// SELECT).
	ErrNoMailbox = errors.New("mailbox: folder does not exist")
)

// ErrUnavailable means the server asked to be tried later (throttled or
// busy: an HTTP 429 or 503 of a web mail API): temporary.
var ErrUnavailable = errors.New("mailbox: server unavailable, try later")

// Transport failures that imapclient reports without wrapping the cause.
var (
	errTimeout    = fmt.Errorf("command timed out: %w", os.ErrDeadlineExceeded)
	errConnection = errors.New("connection failed")
)

// Temporary reports whether retrying the operation that returned err, on a
// new connection, can help: network errors, timeouts, a connection closed by
// the server (BYE) and the UNAVAILABLE, INUSE and SERVERBUG response codes.
// ErrAuth, ErrNoMailbox, TLS certificate errors, other NO/BAD responses and a
// cancelled context are not temporary.
//
// After a temporary error the Client is unusable: Close it and Dial again.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, ErrAuth) || errors.Is(err, ErrNoMailbox) {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	// A TokenSource's error says itself (the token endpoint down: yes;
	// the grant refused: no).
	var tr interface{ Transient() bool }
	if errors.As(err, &tr) {
		return tr.Transient()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errTimeout) || errors.Is(err, errConnection) ||
		errors.Is(err, ErrUnavailable) {
		return true
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		if ie.Type == imap.StatusResponseTypeBye {
			return true
		}
		switch ie.Code {
		case imap.ResponseCodeUnavailable, imap.ResponseCodeInUse, imap.ResponseCodeServerBug:
			return true
		}
		return false
	}
	if isTLSError(err) {
		return false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return !dnsErr.IsNotFound
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// imapCode returns the status type and response code of an IMAP error, or ""
// when err carries no IMAP status response.
func imapCode(err error) (imap.StatusResponseType, imap.ResponseCode) {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Type, ie.Code
	}
	return "", ""
}

// isTLSError reports a failed TLS handshake: a wrong certificate or a
// protocol mismatch does not heal by itself.
func isTLSError(err error) bool {
	var certErr *tls.CertificateVerificationError
	var alertErr tls.AlertError
	var recordErr tls.RecordHeaderError
	return errors.As(err, &certErr) || errors.As(err, &alertErr) || errors.As(err, &recordErr)
}
