package store

import (
	"fmt"
	"slices"
	"testing"
)

// Walking a list by its keyset cursor gives the same rows in the same order
// as walking it by page number, ties in time included (a group commit
// gives many rows one timestamp), and the cursor of the last row ends it.
func TestKeysetPagesMatchOffsetPages(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		ps := mustProjects(t, e.s, "acme", "beta")
		var batch []Fetched
		for i := range 23 {
			batch = append(batch, Fetched{UID: uint32(i + 1), Raw: []byte(fmt.Sprintf("Message-ID: <k%d@x>\r\n\r\nbody %d\r\n", i, i))})
		}
		// One batch: the rows share received_at, and only the ID orders them.
		ids, err := e.s.RecordFetchedBatch(ctx, ps[0].ID, 1, batch)
		if err != nil {
			t.Fatalf("RecordFetchedBatch: %v", err)
		}
		for i, id := range ids[:7] {
			mustCommit(t, e.s, newTicketDelivery(ps[0], id, fmt.Sprintf("<k%d@x>", i)))
		}
		mustFetch(t, e.s, ps[1].ID, 1, "other@x")

		byOffset := func(per int) (all []int64) {
			for n := 1; ; n++ {
				rows, more, err := e.s.ListInbound(ctx, InboundFilter{Project: "acme"}, Page{Page: n, PerPage: per})
				if err != nil {
					t.Fatalf("ListInbound page %d: %v", n, err)
				}
				for _, r := range rows {
					all = append(all, r.ID)
				}
				if !more {
					return all
				}
			}
		}
		byCursor := func(per int) (all []int64) {
			var after int64
			for {
				rows, more, err := e.s.ListInbound(ctx, InboundFilter{Project: "acme"}, Page{PerPage: per, After: after})
				if err != nil {
					t.Fatalf("ListInbound after %d: %v", after, err)
				}
				for _, r := range rows {
					all = append(all, r.ID)
				}
				if !more {
					return all
				}
				after = rows[len(rows)-1].ID
			}
		}
		for _, per := range []int{1, 4, 23, 50} {
			off, cur := byOffset(per), byCursor(per)
			if len(off) != 23 || !slices.Equal(off, cur) {
				t.Fatalf("inbound, %d per page: by page %v, by cursor %v; want the same 23 rows", per, off, cur)
			}
		}

		ticketsBy := func(page Page) ([]int64, bool) {
			ts, more, err := e.s.Tickets(ctx, TicketFilter{Project: "acme"}, page)
			if err != nil {
				t.Fatalf("Tickets(%+v): %v", page, err)
			}
			var got []int64
			for _, tk := range ts {
				got = append(got, tk.ID)
			}
			return got, more
		}
		first, more := ticketsBy(Page{PerPage: 3})
		second, _ := ticketsBy(Page{PerPage: 3, After: first[2]})
		wantSecond, _ := ticketsBy(Page{Page: 2, PerPage: 3})
		if !more || !slices.Equal(second, wantSecond) {
			t.Fatalf("tickets after %d = %v, want page 2 = %v", first[2], second, wantSecond)
		}

		if _, _, err := e.s.DeadLetters(ctx, Page{PerPage: 2, After: 1}); err != nil {
			t.Fatalf("DeadLetters by cursor: %v", err)
		}
	})
}
