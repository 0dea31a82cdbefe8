package mailbox

import (
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestFirstUIDsAfterWalksTheRangesTheServerAnswered(t *testing.T) {
	r := func(start, stop imap.UID) imap.UIDRange { return imap.UIDRange{Start: start, Stop: stop} }
	for _, tc := range []struct {
		name  string
		set   imap.UIDSet
		after uint32
		limit int
		want  []uint32
	}{
		{"a batch from the start of one long range", imap.UIDSet{r(1, 100000)}, 0, 3, []uint32{1, 2, 3}},
		{"a batch from the middle of it", imap.UIDSet{r(1, 100000)}, 99998, 5, []uint32{99999, 100000}},
		{"the highest UID, answered for n:* past the end, is not new", imap.UIDSet{r(7, 7)}, 9, 10, nil},
		{"ranges in any order and reversed", imap.UIDSet{r(20, 18), r(3, 4), r(10, 10)}, 0, 0, []uint32{3, 4, 10, 18, 19, 20}},
		{"overlapping ranges give each UID once", imap.UIDSet{r(1, 5), r(3, 8)}, 2, 0, []uint32{3, 4, 5, 6, 7, 8}},
		{"the limit cuts across ranges", imap.UIDSet{r(5, 6), r(9, 12)}, 0, 3, []uint32{5, 6, 9}},
		{"nothing waiting", nil, 0, 100, nil},
		{"the last possible UID", imap.UIDSet{r(^imap.UID(0)-1, ^imap.UID(0))}, 0, 0, []uint32{^uint32(0) - 1, ^uint32(0)}},
		{"the last possible UID, answered twice", imap.UIDSet{r(^imap.UID(0)-2, ^imap.UID(0)), r(^imap.UID(0)-1, ^imap.UID(0)), r(^imap.UID(0), ^imap.UID(0))}, 0, 0,
			[]uint32{^uint32(0) - 2, ^uint32(0) - 1, ^uint32(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := firstUIDsAfter(tc.set, tc.after, tc.limit)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("firstUIDsAfter(%v, %d, %d) = %v, %v; want %v", tc.set, tc.after, tc.limit, got, err, tc.want)
			}
		})
	}
}

func TestFirstUIDsAfterRefusesAStarInsteadOfPanicking(t *testing.T) {
	_, err := firstUIDsAfter(imap.UIDSet{{Start: 5, Stop: 0}}, 0, 10)
	if err == nil || !strings.Contains(err.Error(), `"*"`) {
		t.Fatalf("err = %v; want the server's \"*\" named", err)
	}
}
