package ingest

import (
	"context"
	"testing"
)

// FuzzIngest runs whole ingest decisions (parse, classify, thread, commit)
// on arbitrary bytes through Processor.Process and the in-memory store,
// which holds ticket 12 with known Message-IDs so that threading has
// something to match. Garbage must never panic, never return an error (an
// error means "retry": garbage would retry forever) and always commit
// exactly one outcome. Seeds: testdata/fuzz/FuzzIngest, small versions of
// the hostile shapes among them.
func FuzzIngest(f *testing.F) {
	f.Add([]byte("From: a@customer.test\r\nTo: support@acme.test\r\nIn-Reply-To: <thank-you-12@acme.test>\r\nSubject: Re: x\r\n\r\nthanks"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		b := setup(t, &Options{Limits: Limits{References: 5, Addresses: 5, Parts: 8, Depth: 4, FieldBytes: 256, HeaderBytes: 2048}})
		c, err := b.proc.Process(context.Background(), b.add(raw))
		if err != nil {
			t.Fatalf("Process returned %v; want an outcome committed (an error would retry)", err)
		}
		if len(b.st.commits) != 1 {
			t.Fatalf("%d commits, want exactly one", len(b.st.commits))
		}
		if c.Outcome == "" || b.st.commits[0].Outcome == "" {
			t.Fatalf("no outcome: committed %+v", c)
		}
	})
}
