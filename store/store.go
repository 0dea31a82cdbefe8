// Package store is the persistence layer of servicedesk: projects, the
// per-mailbox fetch lease and cursor (UIDVALIDITY/UID, RFC 9051 section 2.3.1.1),
// the inbound ledger with content-addressed raw messages (RFC 5322), tickets,
// messages, attachments, agents' notes, the notification outbox with
// per-recipient counts for caps, bounce suppression (recipients whose mail
// came back as a delivery status notification, RFC 3464) and dead letters.
//
// It runs on SQLite (github.com/ncruces/go-sqlite3, pure Go, with its own
// gorm dialector, gormlite; WAL, immediate transactions, so
// several processes may share one file) and PostgreSQL
// (gorm.io/driver/postgres). It is the only package that imports gorm; gorm's
// errors never leave it: callers branch on ErrNotFound and ErrLeaseLost.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	sqlite3driver "github.com/ncruces/go-sqlite3/driver"
	"github.com/ncruces/go-sqlite3/gormlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/ticket"
)

// ErrNotFound is returned when the asked-for row does not exist: the
// domain's one ticket.ErrNotFound, under the name callers of the store know.
var ErrNotFound = ticket.ErrNotFound

// ErrLeaseLost is returned by RenewMailbox when another owner holds the
// mailbox lease (ours expired and was taken).
var ErrLeaseLost = errors.New("mailbox lease lost")

// Options tunes a Store. A nil *Options means defaults.
type Options struct {
	// Logger receives warnings (slow queries, retried transactions).
	// Defaults to discarding.
	Logger *slog.Logger
	// MaxOpenConns caps the connection pool. 0 means 10 for PostgreSQL and
	// 4 for a SQLite file (1 for sqlite://:memory:, which is per connection).
	MaxOpenConns int
	// Now is the clock used for leases and timestamps. Defaults to time.Now.
	Now func() time.Time
}

// Store is the database. It is safe for concurrent use.
type Store struct {
	db       *gorm.DB
	dialect  string // "sqlite" or "postgres"
	log      *slog.Logger
	now      func() time.Time
	maxTries int
	// writers admits one transaction at a time on SQLite, which has one
	// writer per file anyway: in-process writers queue here and are handed
	// the lock at once instead of polling it through SQLite's busy handler,
	// which sleeps 1, 2, 5, 10 ms... between tries and leaves cores idle.
	// Other processes on the same file still meet busy_timeout. Nil on
	// PostgreSQL.
	writers chan struct{}
	// group holds the deliveries waiting to be committed.
	group groupCommit
}

// sqliteTimeFormat is how times are written to SQLite: the format of
// SQLite's date and time functions, with nanoseconds and the offset.
const sqliteTimeFormat = "2006-01-02 15:04:05.999999999-07:00"

// postgresGroupLeaders is how many groups of deliveries one process
// commits at once on PostgreSQL (groupCommit).
const postgresGroupLeaders = 2

const (
	dialectSQLite   = "sqlite"
	dialectPostgres = "postgres"
)

// Open connects to the database at rawURL:
//
//	sqlite://./servicedesk.db, sqlite:///abs/path.db, sqlite://:memory:
//	postgres://user:pass@host:5432/db?sslmode=disable (or postgresql://)
//
// It does not migrate; call Migrate.
func Open(ctx context.Context, rawURL string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("component", "store")
	s := &Store{log: log, now: o.Now, maxTries: 6}
	if s.now == nil {
		s.now = time.Now
	}

	// No error says more of the URL than its scheme: it may hold a
	// password (and a libpq "key=value" string is one whole secret).
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok || !schemePattern.MatchString(scheme) {
		return nil, errors.New("open database: not a URL (want sqlite://… or postgres://…)")
	}
	var dialector gorm.Dialector
	var sqliteConn *sql.DB // closed here if gorm cannot open it
	maxConns := o.MaxOpenConns
	wal := false
	sqliteFile := "" // the database file, when there is one
	redact := func(msg string) string { return msg }
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		path, query, _ := strings.Cut(rest, "?")
		if path == "" {
			return nil, errors.New("open database: sqlite url has no path (want sqlite://./file.db)")
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, fmt.Errorf("open database: sqlite url query: %s", config.URLProblem(err))
		}
		q.Set("_txlock", "immediate")
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "foreign_keys(1)")
		onFile := path != ":memory:" && q.Get("mode") != "memory"
		if onFile {
			sqliteFile = path
			q.Add("_pragma", "synchronous(NORMAL)")
			q.Add("_pragma", "temp_store(MEMORY)")
			maxConns = cmp.Or(maxConns, 4)
			if err := s.ownerOnlyFiles(path, q.Get("mode")); err != nil {
				return nil, err
			}
			// SQLite gives the -wal (and a rollback journal) the mode of
			// the file named by modeof: the database's own, 0600.
			q.Set("modeof", path)
		} else {
			maxConns = 1
		}
		// Times are written as the store always wrote them (the format of
		// glebarez/go-sqlite, its driver until 2026-11), so older files
		// still compare and scan.
		q.Set("_timefmt", sqliteTimeFormat)
		dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
		// Every new connection makes sure of the -shm before its first
		// read creates it: SQLite deletes it with the last connection, and
		// this VFS creates it 0666 less the umask, not with modeof.
		conn, err := sqlite3driver.Open(dsn, func(*sqlite3.Conn) error {
			if onFile {
				_ = createOwnerOnly(path + "-shm")
				_, _, _ = restrictToOwner(path + "-shm")
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("open database (sqlite): %w", err)
		}
		sqliteConn = conn
		dialector = gormlite.OpenDB(conn)
		s.dialect = dialectSQLite
		s.writers = make(chan struct{}, 1)
		s.group.gate = s.writers
		wal = onFile
	case "postgres", "postgresql":
		// pgx quotes a URL it cannot parse, and only hides the password
		// of the user part: parse it first, and redact what the driver says.
		if _, err := url.Parse(rawURL); err != nil {
			return nil, fmt.Errorf("open database (postgres): not a valid URL: %s", config.URLProblem(err))
		}
		redact = dsnRedactor(rawURL)
		dialector = postgres.Open(rawURL)
		s.dialect = dialectPostgres
		s.group.gate = make(chan struct{}, postgresGroupLeaders)
		maxConns = cmp.Or(maxConns, 10)
	default:
		return nil, fmt.Errorf("open database: unknown scheme %q (want sqlite:// or postgres://)", scheme)
	}

	// Opening a SQLite file that another process is writing can meet
	// SQLITE_BUSY outside busy_timeout's reach: retried like a
	// transaction conflict.
	var db *gorm.DB
	err := s.retry(ctx, func() error {
		var err error
		db, err = gorm.Open(dialector, &gorm.Config{
			Logger:                 gormLogger{log: log, redact: redact},
			SkipDefaultTransaction: true,
			NowFunc:                func() time.Time { return s.now().UTC() },
			// SQLite parses every statement it is given: the store reuses
			// them per connection (pgx does that itself on PostgreSQL).
			PrepareStmt:        s.dialect == dialectSQLite,
			PrepareStmtMaxSize: 512,
			PrepareStmtTTL:     time.Hour,
		})
		return err
	})
	if err != nil {
		if sqliteConn != nil {
			_ = sqliteConn.Close()
		}
		return nil, redactError(fmt.Errorf("open database (%s): %w", s.dialect, err), redact)
	}
	if wal {
		// WAL is a property of the file: set once here, not by every new
		// connection, where it can meet SQLITE_BUSY while another process
		// writes.
		err := s.retry(ctx, func() error { return db.WithContext(ctx).Exec("PRAGMA journal_mode=WAL").Error })
		if err != nil {
			if sqlDB, derr := db.DB(); derr == nil {
				_ = sqlDB.Close()
			}
			return nil, fmt.Errorf("open database (sqlite): set WAL mode: %w", err)
		}
	}
	s.db = db
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("open database (%s): %w", s.dialect, err)
	}
	sqlDB.SetMaxOpenConns(maxConns)
	sqlDB.SetMaxIdleConns(maxConns)
	if err := s.Ping(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, redactError(err, redact)
	}
	if sqliteFile != "" {
		// They were made 0600 as they were created; this catches a -wal
		// or -shm that another program made meanwhile.
		s.tighten(sqliteFile + "-wal")
		s.tighten(sqliteFile + "-shm")
	}
	return s, nil
}

// schemePattern is RFC 3986's scheme. What comes before "://" otherwise
// is part of something else, and is not echoed.
var schemePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]{0,31}$`)

// redactURL hides the password of a database URL, for tests' messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !strings.Contains(raw, "://") {
		return "(not a URL)"
	}
	return u.Redacted()
}

// ownerOnlyFiles makes the database file and an existing -wal and -shm
// readable and writable by their owner only: a new database is created
// 0600 here, whatever the umask (SQLite would create it 0666 less the
// umask: world-readable mail), unless mode says SQLite may not create it.
// A file that others could read is tightened, and the log says so.
func (s *Store) ownerOnlyFiles(path, mode string) error {
	if mode == "" || mode == "rwc" {
		if err := createOwnerOnly(path); err != nil {
			return fmt.Errorf("open database (sqlite): %w", err)
		}
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		s.tighten(p)
	}
	return nil
}

// tighten is restrictToOwner, logging what it changed, or
// that it could not: a file of another user's, shared on purpose through
// its group, is not ours to change, and still opens.
func (s *Store) tighten(path string) {
	old, changed, err := restrictToOwner(path)
	switch {
	case err != nil:
		s.log.Warn("database file is open to other users and could not be restricted", "path", path, "err", err)
	case changed:
		s.log.Warn("database file was open to other users; now readable by its owner only", "path", path, "old_mode", old.String())
	}
}

// createOwnerOnly creates the file at path with mode 0600 if it is
// missing.
func createOwnerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	// The umask can only take bits away; this gives none back beyond 0600.
	return errors.Join(f.Chmod(0o600), f.Close())
}

// restrictToOwner clears the group and other bits of the file at path
// (0644 becomes 0600), reporting the old mode when it changed it. A
// missing file is no error.
func restrictToOwner(path string) (old fs.FileMode, changed bool, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return perm, false, nil
	}
	if err := os.Chmod(path, perm&^0o077); err != nil {
		return perm, false, fmt.Errorf("restrict %s to its owner: %w", path, err)
	}
	return perm, true, nil
}

// dsnRedactor returns a function that takes out of a message every form in
// which a driver may quote the PostgreSQL URL raw (whole, with its password
// replaced, as pgx does, or redacted), its password, its query and the
// values of its secret query parameters (password=, sslpassword=).
func dsnRedactor(raw string) func(string) string {
	parts := []string{raw}
	if u, err := url.Parse(raw); err == nil {
		parts = append(parts, u.String(), u.Redacted(), u.RawQuery)
		if pw, ok := u.User.Password(); ok {
			asPGX := *u
			asPGX.User = url.UserPassword(u.User.Username(), "xxxxx")
			parts = append(parts, asPGX.String(), pw, url.QueryEscape(pw))
		}
		for k, vs := range u.Query() {
			if k := strings.ToLower(k); strings.Contains(k, "pass") || strings.Contains(k, "key") || strings.Contains(k, "secret") {
				parts = append(parts, vs...)
			}
		}
	}
	// Longest first, so that a part inside another goes with it.
	slices.SortFunc(parts, func(a, b string) int { return len(b) - len(a) })
	quotedURL := regexp.MustCompile("`[^`]*://[^`]*`")
	return func(msg string) string {
		for _, p := range parts {
			if len(p) > 1 {
				msg = strings.ReplaceAll(msg, p, "…")
			}
		}
		return quotedURL.ReplaceAllString(msg, "`…`")
	}
}

// redactedError is an error whose message went through a redactor; the
// original stays reachable for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redactError(err error, redact func(string) string) error {
	if msg := redact(err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

// Close closes the connection pool.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return sqlDB.Close()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database (%s, retry may help): %w", s.dialect, err)
	}
	return nil
}

// tx runs fn in one transaction, retrying the whole of it a few times when
// the database reports a transient conflict (SQLite busy, PostgreSQL
// serialization failure or deadlock). fn must not have effects outside tx
// other than on values it resets at its start.
func (s *Store) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.retry(ctx, func() error { return s.transaction(ctx, fn) })
}

// retry runs attempt until it succeeds, fails for a reason other than a
// transient conflict, or has run s.maxTries times, backing off between.
func (s *Store) retry(ctx context.Context, attempt func() error) error {
	var err error
	for n := 1; ; n++ {
		err = attempt()
		if err == nil || !retryable(err) || n >= s.maxTries {
			return err
		}
		s.log.Warn("transaction conflict, retrying", "attempt", n, "err", err)
		backoff := time.Duration(n*n)*20*time.Millisecond + time.Duration(rand.IntN(20))*time.Millisecond
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(backoff):
		}
	}
}

// transaction runs one attempt of fn, behind the SQLite write gate.
func (s *Store) transaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if s.writers != nil {
		select {
		case s.writers <- struct{}{}:
			defer func() { <-s.writers }()
		case <-ctx.Done():
			return fmt.Errorf("wait for the database's write lock: %w", ctx.Err())
		}
	}
	return s.db.WithContext(ctx).Transaction(fn)
}

// retryable reports whether err is a transient conflict that a new attempt
// of the same transaction can overcome.
func retryable(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		switch pg.SQLState() {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
		return false
	}
	return errors.Is(err, sqlite3.BUSY) || errors.Is(err, sqlite3.LOCKED)
}

// notFound maps gorm's not-found to ErrNotFound; other errors pass through.
func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}

// Page selects a page of a list. Page counts from 1; PerPage defaults to 50
// and is capped at 1000. After, when set, is the ID of the last row of the
// previous page (the keyset cursor): the page starts right after it by the
// list's order, found through the list's index instead of an OFFSET scan,
// and Page is ignored.
type Page struct {
	Page, PerPage int
	After         int64
}

// Normalize returns p with defaults and limits applied.
func (p Page) Normalize() Page {
	if p.Page < 1 {
		p.Page = 1
	}
	if p.PerPage <= 0 {
		p.PerPage = 50
	}
	if p.PerPage > 1000 {
		p.PerPage = 1000
	}
	// Beyond this page the offset would overflow; no list is this long.
	if p.Page > MaxPage {
		p.Page = MaxPage
	}
	return p
}

// MaxPage is the highest page Normalize lets through (the API answers 400
// above it): (MaxPage-1) x 1000 rows fits any int.
const MaxPage = 1_000_000

func (p Page) offset() int { return (p.Page - 1) * p.PerPage }

// newestFirst orders q by (column, id) descending, the order of every list,
// and applies p: rows after the keyset cursor when p.After is set (a row
// value comparison with the cursor row's own values, which SQLite and
// PostgreSQL both answer from the list's index), else an offset. One row
// more than a page is asked for, to tell whether another page follows.
func newestFirst(q *gorm.DB, table, column string, p Page) *gorm.DB {
	order := fmt.Sprintf("%s.%s DESC, %s.id DESC", table, column, table)
	if p.After > 0 {
		q = q.Where(fmt.Sprintf("(%s.%s, %s.id) < (SELECT c.%s, c.id FROM %s c WHERE c.id = ?)", table, column, table, column, table), p.After)
		return q.Order(order).Limit(p.PerPage + 1)
	}
	return q.Order(order).Offset(p.offset()).Limit(p.PerPage + 1)
}

// gormLogger forwards gorm's warnings and errors to slog: slow queries (over
// 1 s) at Warn; record-not-found is not an error worth logging. Messages go
// through redact first: gorm logs the driver's error when it cannot open
// the database, and that may quote the URL.
type gormLogger struct {
	log    *slog.Logger
	redact func(string) string
}

var _ logger.Interface = gormLogger{}

func (l gormLogger) LogMode(logger.LogLevel) logger.Interface { return l }
func (l gormLogger) Info(context.Context, string, ...any)     {}
func (l gormLogger) Warn(ctx context.Context, msg string, args ...any) {
	l.log.WarnContext(ctx, l.redact(fmt.Sprintf(msg, args...)))
}
func (l gormLogger) Error(ctx context.Context, msg string, args ...any) {
	l.log.WarnContext(ctx, l.redact(fmt.Sprintf(msg, args...)))
}
func (l gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if elapsed := time.Since(begin); elapsed > time.Second {
		sql, rows := fc()
		l.log.WarnContext(ctx, "slow query", "elapsed", elapsed, "rows", rows, "sql", truncate(sql, 200))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
