package store

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"
)

// TestLedgerQueriesReadTheirOwnIndexes: with a ledger of thousands of rows
// and no statistics (a fresh PostgreSQL schema, or autovacuum off), each
// query the mailbox sync runs per batch, and the scheduler's sweep of
// rejected mail, reads the index made for it. The
// batch's UID lookup once read idx_inbound_refetch, whose first columns
// match too, and filtered every row of the project by UID: a backlog of
// 100,000 drained at two thirds of the rate of one of 2,000.
func TestLedgerQueriesReadTheirOwnIndexes(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		const rows, batch = 3000, 500
		for first := 1; first <= rows; first += batch {
			msgs := make([]Fetched, batch)
			for i := range msgs {
				msgs[i] = Fetched{UID: uint32(first + i), Raw: fmt.Appendf(nil, "raw %d", first+i)}
			}
			if _, err := e.s.RecordFetchedBatch(ctx, p.ID, 7, msgs); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name, index string
			// cond, when set, must match the plan: a condition the index
			// scan itself applies, not a filter of the rows it read.
			cond *regexp.Regexp
			run  func(s *Store) error
		}{
			{"the batch's UID lookup", "inbound_uid", uidInIndex, func(s *Store) error {
				_, err := s.RecordFetchedBatch(ctx, p.ID, 7, []Fetched{{UID: 2999, Raw: []byte("raw 2999")}, {UID: 3001, Raw: []byte("raw 3001")}})
				return err
			}},
			{"the rows whose after_processing is due", "idx_inbound_pending_apply", nil, func(s *Store) error {
				_, err := s.UnappliedInbound(ctx, p.ID, 7, 1000)
				return err
			}},
			{"the rows flagged for a refetch", "idx_inbound_pending_refetch", nil, func(s *Store) error {
				_, err := s.RefetchInbound(ctx, p.ID, 7, 100)
				return err
			}},
			{"the rejected mail to answer (the scheduler's sweep, every project)", "idx_inbound_answer", nil, func(s *Store) error {
				_, err := s.RejectionsToAnswer(ctx, 100)
				return err
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				plans := explainQueries(t, e, tc.run, "inbound")
				if len(plans) == 0 {
					t.Fatal("no query on inbound was run")
				}
				for q, plan := range plans {
					if !strings.Contains(plan, tc.index) {
						t.Errorf("%s\nreads no %s:\n%s", q, tc.index, plan)
					}
					if tc.cond != nil && !tc.cond.MatchString(plan) {
						t.Errorf("%s\nreads %s without the UID in its condition (it filters every row of the folder):\n%s", q, tc.index, plan)
					}
				}
			})
		}
	})
}

// uidInIndex matches a plan whose index scan applies a condition on uid
// (PostgreSQL's "Index Cond: (... (uid >= ...", SQLite's "USING INDEX
// inbound_uid (project_id=? AND uid_validity=? AND uid>? ...").
var uidInIndex = regexp.MustCompile(`Index Cond: .*\(uid (>=|<=|=)|inbound_uid \(.*AND uid[<>=]`)

// explainQueries runs fn on a store of e's database and returns the plan
// of every SELECT it ran on table (by its SQL, planned with its values), as
// the database would run it with sequential scans ruled out on
// PostgreSQL: which index, if any, the planner takes.
func explainQueries(t *testing.T, e *env, fn func(s *Store) error, table string) map[string]string {
	t.Helper()
	s := e.open(t)
	var mu sync.Mutex
	type query struct {
		sql  string
		vars []any
	}
	var queries []query
	err := s.db.Callback().Query().After("gorm:query").Register("test:capture", func(db *gorm.DB) {
		q := db.Statement.SQL.String()
		if strings.Contains(q, `FROM "`+table+`"`) || strings.Contains(q, "FROM `"+table+"`") || strings.Contains(q, "FROM "+table+" ") {
			mu.Lock()
			queries = append(queries, query{q, append([]any(nil), db.Statement.Vars...)})
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(s); err != nil {
		t.Fatal(err)
	}
	plans := map[string]string{}
	for _, q := range queries {
		var lines []string
		err := s.db.Connection(func(tx *gorm.DB) error {
			explain := "EXPLAIN QUERY PLAN "
			if s.dialect == dialectPostgres {
				explain = "EXPLAIN "
				if err := tx.Exec("SET enable_seqscan = off").Error; err != nil {
					return err
				}
				defer tx.Exec("RESET enable_seqscan")
			}
			rows, err := tx.Raw(explain+q.sql, q.vars...).Rows()
			if err != nil {
				return err
			}
			defer rows.Close()
			cols, _ := rows.Columns()
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					return err
				}
				lines = append(lines, fmt.Sprint(vals...))
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatalf("explain %s: %v", q.sql, err)
		}
		plans[q.sql] = strings.Join(lines, "\n")
	}
	return plans
}
