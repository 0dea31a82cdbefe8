package ingest

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/jhillyerd/enmime/v2"
)

// fuzzLimits are small, so that fuzzing reaches every limit.
var fuzzLimits = Limits{References: 5, Addresses: 5, Parts: 8, Depth: 4, FieldBytes: 256, HeaderBytes: 2048}

// FuzzIngest runs whole ingest decisions (parse, classify, thread, commit)
// on arbitrary bytes through Processor.Process and the in-memory store,
// which holds ticket 12 with known Message-IDs so that threading has
// something to match. Garbage must never panic, never return an error (an
// error means "retry": garbage would retry forever) and always commit
// exactly one outcome; and what the pre-scan hands enmime must come to at
// most Limits.Parts parts nested at most Limits.Depth deep
// (wantBoundedTree). Seeds: testdata/fuzz/FuzzIngest, small versions of
// the hostile shapes among them.
func FuzzIngest(f *testing.F) {
	f.Add([]byte("From: a@customer.test\r\nTo: support@acme.test\r\nIn-Reply-To: <thank-you-12@acme.test>\r\nSubject: Re: x\r\n\r\nthanks"))
	for _, seed := range boundarySeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		wantBoundedTree(t, raw, fuzzLimits)
		b := setup(t, &Options{Limits: fuzzLimits})
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

// boundarySeeds are shapes whose part delimiters enmime finds where a
// line-start reading of RFC 2046 does not: after a byte ("X--b"), after a
// bare carriage return, in the middle of a line, in a part header.
var boundarySeeds = []string{
	"From: a@x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n0\r\n" +
		strings.Repeat("X--b\r\nContent-Type: text/plain\r\n\r\np\r\n", 20) + "--b--\r\n",
	"From: a@x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n0\r\n" +
		strings.Repeat("a\rX--b \r\nZ --b \r\nContent-Type: text/plain\r\n\r\np\r\n", 20) + "--b--\r\n",
	"From: a@x\r\nContent-Type: multipart/mixed; boundary=d0\r\n\r\n" + nestedX(10),
	"From: a@x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/mixed;\r\nboundary=c\r\n\r\n" +
		strings.Repeat("--c\r\n\r\np\r\n", 20) + "--c--\r\n--b--\r\n",
	"From: a@x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nX-Pad: " + strings.Repeat("p", 5000) +
		"\r\nContent-Type: multipart/mixed; boundary=c; x=\"--b \"\r\n\r\n" + strings.Repeat("--c\r\n\r\np\r\n", 20) + "--c--\r\n--b--\r\n",
}

// nestedX nests multipart/mixed n deep, every delimiter but the first
// after an "X".
func nestedX(n int) string {
	var b strings.Builder
	for i := 1; i < n; i++ {
		pre := "X"
		if i == 1 {
			pre = ""
		}
		b.WriteString(pre + "--d" + itoa(i-1) + "\r\nContent-Type: multipart/mixed; boundary=\"d" + itoa(i) + "\"\r\n\r\n")
	}
	b.WriteString("X--d" + itoa(n-1) + "\r\nContent-Type: text/plain\r\n\r\ninnermost\r\n")
	for i := n - 1; i >= 0; i-- {
		b.WriteString("--d" + itoa(i) + "--\r\n")
	}
	return b.String()
}

func itoa(i int) string { return strconv.Itoa(i) }

// wantBoundedTree runs the pre-scan on raw, hands its output to enmime as
// ParseContext does and walks the tree enmime builds: at most lim.Parts
// parts below the root, none deeper than lim.Depth multiparts.
func wantBoundedTree(t *testing.T, raw []byte, lim Limits) {
	t.Helper()
	lim = lim.WithDefaults()
	s := &prescan{lim: lim, m: &Mail{}, check: func(string) error { return nil }}
	h, body, err := s.bound(raw)
	if err != nil {
		return
	}
	env, err := readEnvelope(newEnmimeParser(true), io.MultiReader(bytes.NewReader(h.block), bytes.NewReader(body)))
	if err != nil || env.Root == nil {
		return
	}
	parts, depth := treeSize(env.Root)
	if parts > lim.Parts || depth > lim.Depth {
		t.Fatalf("enmime read %d parts nested %d deep from the pre-scan's output; limits %d parts, %d deep",
			parts, depth, lim.Parts, lim.Depth)
	}
}

// treeSize counts the parts below root and the most multiparts around
// one of them.
func treeSize(root *enmime.Part) (parts, depth int) {
	var walk func(p *enmime.Part, d int)
	walk = func(p *enmime.Part, d int) {
		for c := p.FirstChild; c != nil; c = c.NextSibling {
			parts++
			depth = max(depth, d+1)
			walk(c, d+1)
		}
	}
	walk(root, 0)
	return parts, depth
}
