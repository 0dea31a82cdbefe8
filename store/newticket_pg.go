package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"gorm.io/gorm"

	"github.com/servicedesk/servicedesk/ticket"
)

// newTicketSQL* write a delivery that opens a ticket on PostgreSQL in one
// statement, so in one round trip: data-modifying CTEs run once each, see
// one snapshot and link through RETURNING. They do what commitDelivery
// does for that case, taking locks in the same order: the ledger row
// (still without an outcome), the dedup key, the attachments' blobs, then
// the ticket's number (the seq CTE, between newTicketSQLHead and
// newTicketSQLTail): from the project's counter (newTicketNumberedSQL,
// held until commit, so alone in its implicit transaction) or temporary
// (newTicketUnnumberedSQL, for a group numbered at its end); then the
// rows of the new ticket and the ledger's outcome. When the ledger row
// already has an outcome, or another row holds the dedup key, they write
// nothing and return no row: commitDelivery then decides.
//
// Parameters: $1 inbound ID, $2 project ID, $3 dedup key, $4 now,
// $5 ticket subject, $6 requester, $7..$18 the message (direction, kind,
// from, to JSON, cc JSON, subject, text, html, Message-ID, In-Reply-To,
// references, created at), $19 participants, $20..$22 blobs (sha256,
// size, data), $23..$28 attachments (filename, content type, size,
// sha256, inline, content ID), $29..$32 notifications (message ID or 0
// for this message, kind, recipient, Message-ID suffix), $33 "@{mail domain}>",
// $34 ledger reason, $35 whether the message is internal, $36..$38 the
// outbound messages that record the notifications (kind, recipients JSON,
// internal; outboundRecords), $39 the desk address.
const (
	newTicketSQLHead = `
WITH l AS (
	SELECT id FROM inbound WHERE id = $1::bigint AND project_id = $2::bigint AND outcome = '' FOR UPDATE
), k AS (
	INSERT INTO dedup_keys (project_id, "key", inbound_id) SELECT $2::bigint, $3::text, id FROM l
	ON CONFLICT (project_id, "key") DO NOTHING RETURNING inbound_id
), b AS (
	INSERT INTO blobs (sha256, size, data) SELECT * FROM unnest($20::text[], $21::bigint[], $22::bytea[])
	WHERE EXISTS (SELECT 1 FROM k)
	ON CONFLICT (sha256) DO NOTHING
	RETURNING 1
), seq AS (
	`
	newTicketSQLTail = `
), t AS (
	INSERT INTO tickets (project_id, number, subject, status, requester, created_at, updated_at)
	SELECT $2::bigint, ticket_seq, $5::text, 'open', $6::text, $4::timestamptz, $4::timestamptz FROM seq
	RETURNING id, number
), m AS (
	INSERT INTO messages (ticket_id, inbound_id, direction, kind, from_addr, to_addrs, cc_addrs, subject,
		text, html, message_id, in_reply_to, refs, internal, created_at)
	SELECT t.id, $1::bigint, $7::text, $8::text, $9::text, $10::text, $11::text, $12::text,
		$13::text, $14::text, $15::text, $16::text, $17::text, $35::bool, $18::timestamptz FROM t
	RETURNING id
), p AS (
	INSERT INTO participants (ticket_id, email) SELECT t.id, e FROM t, unnest($19::text[]) AS e
), a AS (
	INSERT INTO attachments (message_id, filename, content_type, size, sha256, inline, content_id)
	SELECT m.id, x.filename, x.ct, x.size, x.sha, x.inline, x.cid
	FROM m, unnest($23::text[], $24::text[], $25::bigint[], $26::text[], $27::bool[], $28::text[]) AS x(filename, ct, size, sha, inline, cid)
), o AS (
	INSERT INTO messages (ticket_id, inbound_id, direction, kind, from_addr, to_addrs, cc_addrs, subject,
		text, html, message_id, in_reply_to, refs, internal, created_at)
	SELECT t.id, 0, 'outbound', r.kind, $39::text, r.rcpts, '[]', $5::text, '', '', '', '', '', r.internal, $4::timestamptz
	FROM t, unnest($36::text[], $37::text[], $38::bool[]) WITH ORDINALITY AS r(kind, rcpts, internal, ord)
	ORDER BY r.ord
	RETURNING id, kind
), n AS (
	INSERT INTO notifications (project_id, ticket_id, message_id, outbound_id, kind, recipient, mail_id, state, created_at)
	SELECT $2::bigint, t.id, CASE WHEN x.msg = 0 THEN m.id ELSE x.msg END,
		COALESCE((SELECT o.id FROM o WHERE o.kind = x.kind), 0), x.kind, x.rcpt,
		'<sd.' || t.id || '.' || x.suffix || $33::text, 'pending', $4::timestamptz
	FROM t, m, unnest($29::bigint[], $30::text[], $31::text[], $32::text[]) WITH ORDINALITY AS x(msg, kind, rcpt, suffix, ord)
	ORDER BY x.ord
	RETURNING id
), u AS (
	UPDATE inbound SET outcome = 'ticket_created', processed_at = $4::timestamptz, ticket_id = t.id,
		message_id = $15::text, from_addr = $9::text, subject = $12::text, reason = $34::text
	FROM t WHERE inbound.id = $1::bigint
)
SELECT t.id, t.number, COALESCE((SELECT string_agg(id::text, ' ' ORDER BY id) FROM n), '') FROM t`

	// newTicketNumberedSQL takes the number from the project's counter,
	// after the blobs are written (the count of b makes them run first).
	newTicketNumberedSQL = newTicketSQLHead + `UPDATE projects SET ticket_seq = ticket_seq + 1
	WHERE id = $2::bigint AND EXISTS (SELECT 1 FROM k) AND (SELECT count(*) FROM b) >= 0 RETURNING ticket_seq` + newTicketSQLTail
	// newTicketUnnumberedSQL gives the ticket the temporary number
	// -inbound ID, for numberTickets to replace before commit.
	newTicketUnnumberedSQL = newTicketSQLHead + `SELECT -inbound_id AS ticket_seq FROM k` + newTicketSQLTail
)

// commitNewTicketPostgres commits d, a delivery that opens a ticket
// (opensTicket), in one statement (newTicketNumberedSQL). ok is false when
// it wrote nothing because the delivery is not plain: commitDelivery must
// decide.
func (s *Store) commitNewTicketPostgres(ctx context.Context, d ticket.Delivery) (c ticket.Committed, ok bool, err error) {
	sqlDB, err := s.db.DB()
	if err != nil {
		return ticket.Committed{}, false, fmt.Errorf("database handle: %w", err)
	}
	err = s.retry(ctx, func() error {
		c, ok, err = s.insertNewTicketPostgres(ctx, s.db.WithContext(ctx), sqlDB, d, true)
		return err
	})
	return c, ok, err
}

// commitNewTicketsPostgres is commitNewTickets on PostgreSQL: one
// statement for each delivery (newTicketUnnumberedSQL), then the new
// tickets are numbered together, last, so that the project's counter is
// locked once per group and only until commit. The deliveries it does not
// write are left, as by commitNewTickets.
func (s *Store) commitNewTicketsPostgres(tx *gorm.DB, ds []ticket.Delivery) (out []ticket.Committed, left []int, err error) {
	out = make([]ticket.Committed, len(ds))
	var numbered []int
	var ticketIDs []int64
	for i, d := range ds {
		c, ok, err := s.insertNewTicketPostgres(tx.Statement.Context, tx, tx.Statement.ConnPool, d, false)
		switch {
		case err != nil:
			return nil, nil, fmt.Errorf("inbound %d: %w", d.InboundID, err)
		case ok:
			out[i] = c
			numbered = append(numbered, i)
			ticketIDs = append(ticketIDs, c.TicketID)
		default:
			left = append(left, i)
		}
	}
	if len(numbered) > 0 {
		if err := s.numberTickets(tx, ds, numbered, ticketIDs, out); err != nil {
			return nil, nil, err
		}
	}
	return out, left, nil
}

// queryer is what a statement needs: a *sql.DB or, in a transaction, a
// *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// insertNewTicketPostgres runs newTicketNumberedSQL or
// newTicketUnnumberedSQL for d on q, numbered or with
// its temporary number. ok is false when it wrote nothing.
func (s *Store) insertNewTicketPostgres(ctx context.Context, db *gorm.DB, q queryer, d ticket.Delivery, numbered bool) (ticket.Committed, bool, error) {
	desk, err := deskAddress(db, d)
	if err != nil {
		return ticket.Committed{}, false, err // names the project
	}
	domain := notifyDomain(d, desk)
	if domain == "" {
		domain = "localhost" // as newNotificationRow
	}
	now := s.now().UTC()
	m := *d.Message
	m.InboundID = d.InboundID
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	row, err := newMessageRow(0, m)
	if err != nil {
		return ticket.Committed{}, false, fmt.Errorf("message row: %w", err)
	}
	requester := strings.ToLower(strings.TrimSpace(d.NewTicket.Requester))
	participants := participantEmails(desk, append([]string{requester}, d.Participants...))

	var bSHA, aName, aType, aSHA, aCID []string
	var bSize, aSize []int64
	var bData [][]byte
	var aInline []bool
	seen := map[string]bool{}
	for _, a := range m.Attachments {
		b := newBlob(a.Data)
		if !seen[b.SHA256] {
			seen[b.SHA256] = true
			bSHA, bSize, bData = append(bSHA, b.SHA256), append(bSize, b.Size), append(bData, b.Data)
		}
		aName, aType, aSize = append(aName, a.Filename), append(aType, a.ContentType), append(aSize, b.Size)
		aSHA, aInline, aCID = append(aSHA, b.SHA256), append(aInline, a.Inline), append(aCID, a.ContentID)
	}
	var nMsg []int64
	var nKind, nTo, nSuffix []string
	for _, n := range d.Notify {
		suffix, err := randomHex(8)
		if err != nil {
			return ticket.Committed{}, false, fmt.Errorf("notification Message-ID: %w", err)
		}
		nMsg, nKind, nTo, nSuffix = append(nMsg, n.MessageID), append(nKind, string(n.Kind)), append(nTo, n.To), append(nSuffix, suffix)
	}

	recs, _ := outboundRecords(desk, d.NewTicket.Subject, d.Notify, now)
	var oKind, oTo []string
	var oInternal []bool
	for _, r := range recs {
		rr, err := newMessageRow(0, r)
		if err != nil {
			return ticket.Committed{}, false, fmt.Errorf("outbound record: %w", err)
		}
		oKind, oTo, oInternal = append(oKind, rr.Kind), append(oTo, rr.ToAddrs), append(oInternal, rr.Internal)
	}

	query := newTicketUnnumberedSQL
	if numbered {
		query = newTicketNumberedSQL
	}
	rows, err := q.QueryContext(ctx, query,
		d.InboundID, d.ProjectID, d.DedupKey, now, d.NewTicket.Subject, requester,
		row.Direction, row.Kind, row.FromAddr, row.ToAddrs, row.CcAddrs, row.Subject,
		row.Text, row.HTML, row.MessageID, row.InReplyTo, row.Refs, row.CreatedAt,
		nonNilOf(participants),
		nonNilOf(bSHA), nonNilOf(bSize), nonNilOf(bData),
		nonNilOf(aName), nonNilOf(aType), nonNilOf(aSize), nonNilOf(aSHA), nonNilOf(aInline), nonNilOf(aCID),
		nonNilOf(nMsg), nonNilOf(nKind), nonNilOf(nTo), nonNilOf(nSuffix),
		"@"+domain+">", d.Reason, row.Internal,
		nonNilOf(oKind), nonNilOf(oTo), nonNilOf(oInternal), strings.ToLower(desk),
	)
	if err != nil {
		return ticket.Committed{}, false, fmt.Errorf("write new ticket: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return ticket.Committed{}, false, fmt.Errorf("write new ticket: %w", err)
		}
		return ticket.Committed{}, false, nil
	}
	c := ticket.Committed{Outcome: ticket.OutcomeTicketCreated}
	var notes string
	if err := rows.Scan(&c.TicketID, &c.TicketNumber, &notes); err != nil {
		return ticket.Committed{}, false, fmt.Errorf("read new ticket: %w", err)
	}
	if err := rows.Close(); err != nil {
		return ticket.Committed{}, false, fmt.Errorf("write new ticket: %w", err)
	}
	for _, f := range strings.Fields(notes) {
		id, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return ticket.Committed{}, false, fmt.Errorf("read notification IDs %q: %w", notes, err)
		}
		c.Notifications = append(c.Notifications, id)
	}
	if len(c.Notifications) != len(d.Notify) {
		return ticket.Committed{}, false, fmt.Errorf("queued %d notifications for ticket %d, want %d", len(c.Notifications), c.TicketID, len(d.Notify))
	}
	return c, true, nil
}

// nonNilOf gives PostgreSQL an empty array rather than NULL.
func nonNilOf[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
