package store

import (
	"fmt"
	"sync"
	"testing"
)

func TestGraphFolderUIDs(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		const folder = "support@example.test/AAMkInbox"

		t.Run("a folder never synced has no delta link and no messages", func(t *testing.T) {
			link, err := e.s.GraphDeltaLink(ctx, folder)
			if err != nil || link != "" {
				t.Fatalf("GraphDeltaLink = (%q, %v); want empty", link, err)
			}
			msgs, err := e.s.GraphMessagesAfter(ctx, folder, 0, 10)
			if err != nil || len(msgs) != 0 {
				t.Fatalf("GraphMessagesAfter = (%v, %v); want none", msgs, err)
			}
		})

		t.Run("new messages get increasing UIDs in the order seen; known ones keep theirs", func(t *testing.T) {
			page1 := []GraphMessage{{ID: "m1", Size: 100}, {ID: "m2", Size: 200}}
			if err := e.s.SaveGraphDelta(ctx, folder, page1, "next-1"); err != nil {
				t.Fatalf("SaveGraphDelta page 1: %v", err)
			}
			// m2 again (an update: it was marked read), then a new one.
			page2 := []GraphMessage{{ID: "m2", Size: 200}, {ID: "m3", Size: 300}, {ID: "m3", Size: 300}}
			if err := e.s.SaveGraphDelta(ctx, folder, page2, "delta-1"); err != nil {
				t.Fatalf("SaveGraphDelta page 2: %v", err)
			}
			got, err := e.s.GraphMessagesAfter(ctx, folder, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := []GraphMessage{{1, "m1", 100}, {2, "m2", 200}, {3, "m3", 300}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("messages = %v; want %v", got, want)
			}
			if link, _ := e.s.GraphDeltaLink(ctx, folder); link != "delta-1" {
				t.Fatalf("delta link = %q; want the last one saved", link)
			}
		})

		t.Run("after and limit select a window, by UID", func(t *testing.T) {
			got, err := e.s.GraphMessagesAfter(ctx, folder, 1, 1)
			if err != nil || len(got) != 1 || got[0].UID != 2 {
				t.Fatalf("GraphMessagesAfter(1, 1) = (%v, %v); want UID 2 only", got, err)
			}
			byUID, err := e.s.GraphMessagesByUID(ctx, folder, []uint32{3, 1, 99})
			if err != nil || fmt.Sprint(byUID) != fmt.Sprint([]GraphMessage{{1, "m1", 100}, {3, "m3", 300}}) {
				t.Fatalf("GraphMessagesByUID(3, 1, 99) = (%v, %v); want UIDs 1 and 3", byUID, err)
			}
		})

		t.Run("folders are numbered apart", func(t *testing.T) {
			if err := e.s.SaveGraphDelta(ctx, "other/folder", []GraphMessage{{ID: "m1"}}, ""); err != nil {
				t.Fatal(err)
			}
			got, _ := e.s.GraphMessagesAfter(ctx, "other/folder", 0, 0)
			if len(got) != 1 || got[0].UID != 1 {
				t.Fatalf("other folder = %v; want its own UID 1", got)
			}
		})

		t.Run("concurrent writers of one folder never give two messages one UID", func(t *testing.T) {
			const f = "race/folder"
			other := e.open(t)
			var wg sync.WaitGroup
			errs := make(chan error, 20)
			for i := range 20 {
				st := e.s
				if i%2 == 1 {
					st = other
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- st.SaveGraphDelta(ctx, f, []GraphMessage{{ID: fmt.Sprintf("a%d", i)}, {ID: "shared"}}, "")
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("SaveGraphDelta: %v", err)
				}
			}
			got, _ := e.s.GraphMessagesAfter(ctx, f, 0, 0)
			if len(got) != 21 || got[20].UID != 21 {
				t.Fatalf("%d messages, last %v; want 21 with UIDs 1..21", len(got), got[len(got)-1])
			}
		})
	})
}
