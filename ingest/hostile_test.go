package ingest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// This file generates the hostile corpus (never checked in: the largest
// message is 20 MB) and benchmarks Parse on it. It only calls Parse, so
// that the same file measures older code for comparison.

// hostileMessage is one generated message that costs an unbounded parse
// far more than its size suggests.
type hostileMessage struct {
	name string
	raw  []byte
}

// hostileHead is the ordinary header every hostile message starts with, so
// that what survives the cuts is a message a ticket can be opened from.
const hostileHead = "From: Mallory <mallory@evil.test>\r\n" +
	"To: support@acme.test\r\n" +
	"Date: Tue, 25 Mar 2025 10:00:00 +0000\r\n"

// hostileCorpus returns the hostile messages, smallest shapes first. Each
// is built in well under a second.
func hostileCorpus() []hostileMessage {
	var out []hostileMessage
	add := func(name string, build func(b *bytes.Buffer)) {
		var b bytes.Buffer
		build(&b)
		out = append(out, hostileMessage{name: name, raw: b.Bytes()})
	}

	// 40,000 References entries, about 1.2 MB, folded one per line.
	add("references-40000", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: references bomb\r\nMessage-ID: <refs@evil.test>\r\nReferences:")
		for i := range 40000 {
			fmt.Fprintf(b, " <r%06d@evil.test>\r\n", i)
		}
		b.WriteString("\r\nbody\r\n")
	})
	// 32,000 Cc addresses on folded lines.
	add("cc-32000", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: cc bomb\r\nMessage-ID: <cc@evil.test>\r\nCc:")
		for i := range 32000 {
			if i > 0 {
				b.WriteString(",\r\n")
			}
			fmt.Fprintf(b, " U%05d <u%05d@evil.test>", i, i)
		}
		b.WriteString("\r\n")
		b.WriteString("\r\nbody\r\n")
	})
	// 100,000 MIME parts in one multipart/mixed, about 5 MB.
	add("parts-100000", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: parts bomb\r\nMessage-ID: <parts@evil.test>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n")
		for i := range 100000 {
			fmt.Fprintf(b, "--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i)
		}
		b.WriteString("--b--\r\n")
	})
	// multipart/mixed nested 5,000 deep, about 350 KB.
	add("depth-5000", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: depth bomb\r\nMessage-ID: <depth@evil.test>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"d0\"\r\n\r\n")
		const depth = 5000
		for i := 1; i < depth; i++ {
			fmt.Fprintf(b, "--d%d\r\nContent-Type: multipart/mixed; boundary=\"d%d\"\r\n\r\n", i-1, i)
		}
		fmt.Fprintf(b, "--d%d\r\nContent-Type: text/plain\r\n\r\nthe innermost text\r\n", depth-1)
		for i := depth - 1; i >= 0; i-- {
			fmt.Fprintf(b, "--d%d--\r\n", i)
		}
	})
	// A 20 MB Subject on one line.
	add("subject-20MB", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Message-ID: <subject@evil.test>\r\nSubject: ")
		b.WriteString(strings.Repeat("Ü", 10<<20)) // 2 bytes a rune
		b.WriteString("\r\n\r\nbody\r\n")
	})
	// One 1 MB header line.
	add("header-line-1MB", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: long line\r\nMessage-ID: <line@evil.test>\r\nX-Junk: ")
		b.WriteString(strings.Repeat("x", 1<<20))
		b.WriteString("\r\n\r\nbody\r\n")
	})
	// Headers and no body, not even the blank line.
	add("header-only", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: header only\r\nMessage-ID: <hdronly@evil.test>")
	})
	// A header block of 4 MB: 60,000 short fields.
	add("header-block-4MB", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: header block\r\nMessage-ID: <block@evil.test>\r\n")
		for i := range 60000 {
			fmt.Fprintf(b, "X-Filler-%05d: %s\r\n", i, strings.Repeat("f", 50))
		}
		b.WriteString("\r\nbody\r\n")
	})
	// Within the limits, the most work they let through: 19 nested
	// multiparts around a 20 MB leaf (every nesting level reads every
	// byte inside it once more) ...
	add("nested-19-leaf-20MB", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: deep leaf\r\nMessage-ID: <deepleaf@evil.test>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"e0\"\r\n\r\n")
		const depth = 19
		for i := 1; i < depth; i++ {
			fmt.Fprintf(b, "--e%d\r\nContent-Type: multipart/mixed; boundary=\"e%d\"\r\n\r\n", i-1, i)
		}
		fmt.Fprintf(b, "--e%d\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n", depth-1)
		line := strings.Repeat("QUJD", 19) + "\r\n"
		for range (20 << 20) / len(line) {
			b.WriteString(line)
		}
		for i := depth - 1; i >= 0; i-- {
			fmt.Fprintf(b, "--e%d--\r\n", i)
		}
	})
	// ... and 500 parts of 40 KB each.
	add("parts-500-of-40KB", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: many big parts\r\nMessage-ID: <bigparts@evil.test>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"p\"\r\n\r\n")
		chunk := strings.Repeat(strings.Repeat("x", 78)+"\r\n", 40<<10/80)
		for i := range 500 {
			fmt.Fprintf(b, "--p\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"f%d.bin\"\r\n\r\n%s", i, chunk)
		}
		b.WriteString("--p--\r\n")
	})
	// The same 100,000 and 200,000 parts, every delimiter after the first
	// written "X--b": enmime finds a delimiter one byte into a line too.
	for _, n := range []int{100000, 200000} {
		add(fmt.Sprintf("x-parts-%d", n), func(b *bytes.Buffer) {
			b.WriteString(hostileHead + "Subject: x parts bomb\r\nMessage-ID: <xparts@evil.test>\r\n" +
				"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\npart 0\r\n")
			for i := 1; i < n; i++ {
				fmt.Fprintf(b, "X--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i)
			}
			b.WriteString("--b--\r\n")
		})
	}
	// 100,000 parts whose delimiters enmime finds after a bare carriage
	// return: the line after one holding "\rX--b " is read anywhere.
	add("bare-cr-parts-100000", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: bare CR parts bomb\r\nMessage-ID: <crparts@evil.test>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\npart 0\r\n")
		for i := 1; i < 100000; i++ {
			fmt.Fprintf(b, "a\rX--b \r\nZ --b \r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i)
		}
		b.WriteString("--b--\r\n")
	})
	// depth-5000 with "X--" delimiters.
	add("x-depth-5000", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: x depth bomb\r\nMessage-ID: <xdepth@evil.test>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"d0\"\r\n\r\n")
		const depth = 5000
		for i := 1; i < depth; i++ {
			pre := "X"
			if i == 1 {
				pre = ""
			}
			fmt.Fprintf(b, "%s--d%d\r\nContent-Type: multipart/mixed; boundary=\"d%d\"\r\n\r\n", pre, i-1, i)
		}
		fmt.Fprintf(b, "X--d%d\r\nContent-Type: text/plain\r\n\r\nthe innermost text\r\n", depth-1)
		for i := depth - 1; i >= 0; i-- {
			fmt.Fprintf(b, "--d%d--\r\n", i)
		}
	})
	// An embedded message/rfc822 whose header is 256 KiB of empty fields.
	add("rfc822-header-256KB", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: embedded header bomb\r\nMessage-ID: <embedded@evil.test>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
			"--b\r\nContent-Type: message/rfc822\r\n\r\n")
		for range (256 << 10) / 3 {
			b.WriteString("A:\n")
		}
		b.WriteString("\r\n\r\nx\r\n--b--\r\n")
	})
	// A 24 MB header block of empty fields, 4 bytes each.
	add("header-fields-24MB", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: tiny fields\r\nMessage-ID: <tiny@evil.test>\r\n")
		for range (24 << 20) / 4 {
			b.WriteString("A:\r\n")
		}
		b.WriteString("\r\nbody\r\n")
	})
	// 20 header fields with 1 MB names and 70 KB values.
	add("header-names-1MB", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: long names\r\nMessage-ID: <names@evil.test>\r\n")
		for i := range 20 {
			fmt.Fprintf(b, "X-%d%s: %s\r\n", i, strings.Repeat("N", 1<<20), strings.Repeat("v", 70000))
		}
		b.WriteString("\r\nbody\r\n")
	})
	// 24 MB of "<p>", an HTML body without a text/plain one.
	add("html-tags-24MB", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: html bomb\r\nMessage-ID: <html@evil.test>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n")
		b.WriteString(strings.Repeat("<p>", (24<<20)/3))
	})
	// 24 MB of ISO-8859-1 text declared UTF-8: the charset does not
	// hold, so the body is read twice (the second time with detection).
	add("mislabeled-charset-24MB", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: mislabeled\r\nMessage-ID: <mislabeled@evil.test>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		for b.Len() < 24<<20 {
			b.WriteString("Gr\xfc\xdfe aus M\xfcnchen, die Lieferung ist \xfcberf\xe4llig.\r\n")
		}
	})
	// Within the limits: a 20 MB HTML table, a report mailed as HTML only.
	add("html-table-20MB", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: report\r\nMessage-ID: <table@evil.test>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><table>\r\n")
		for b.Len() < 20<<20 {
			b.WriteString("<tr><td>12345</td><td>Widget blue</td><td>3.50</td></tr>\r\n")
		}
		b.WriteString("</table></body></html>\r\n")
	})
	// About 100 MIME parts whose headers hold 60,000 empty fields each,
	// every header under HeaderBytes: 24 MB.
	add("part-fields-60000", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: part header bomb\r\nMessage-ID: <partfields@evil.test>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" +
			"--b\r\nContent-Type: text/plain\r\n\r\nkept text\r\n")
		fields := strings.Repeat("A:\r\n", 60000)
		for b.Len() < 24<<20 {
			b.WriteString("--b\r\nContent-Type: text/plain\r\n" + fields + "\r\nx\r\n")
		}
		b.WriteString("--b--\r\n")
	})
	// Within the limits: 500 parts of 100 fields each.
	add("parts-500-of-100-fields", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: many part fields\r\nMessage-ID: <manyfields@evil.test>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n")
		fields := strings.Repeat("A:\r\n", 99)
		for i := range 500 {
			fmt.Fprintf(b, "--b\r\nContent-Type: text/plain\r\n%s\r\npart %d\r\n", fields, i)
		}
		b.WriteString("--b--\r\n")
	})
	// A delivery status report of 24 MB of per-recipient groups.
	add("dsn-groups-24MB", func(b *bytes.Buffer) {
		b.WriteString(hostileHead + "Subject: dsn bomb\r\nMessage-ID: <dsngroups@evil.test>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n" +
			"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n" +
			"Reporting-MTA: dns; mx.evil.test\r\n\r\n")
		for i := 0; b.Len() < 24<<20; i++ {
			fmt.Fprintf(b, "Final-Recipient: rfc822; r%d@evil.test\nAction: failed\n\n", i)
		}
		b.WriteString("\r\n--b--\r\n")
	})
	return out
}

// normalMail is an ordinary 3 KB customer mail with a small attachment:
// the bare ceiling the hostile figures are read against.
func normalMail() []byte {
	var b bytes.Buffer
	b.WriteString("From: Anna Meyer <anna.meyer@customer.test>\r\nTo: support@acme.test\r\n" +
		"Cc: Bob <bob@customer.test>\r\nSubject: Printer on floor 3 does not print\r\n" +
		"Date: Tue, 25 Mar 2025 10:00:00 +0000\r\nMessage-ID: <normal-3kb@customer.test>\r\n" +
		"References: <a1@customer.test> <a2@customer.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"nb\"\r\n\r\n--nb\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for i := range 20 {
		fmt.Fprintf(&b, "Line %d of the description: the printer shows a paper jam again.\r\n", i)
	}
	b.WriteString("--nb\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"log.txt\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	for range 20 {
		b.WriteString("bG9nIGxpbmUgbG9nIGxpbmUgbG9nIGxpbmUgbG9nIGxpbmUgbG9nIGxpbmUgbG9nIGxp\r\n")
	}
	b.WriteString("--nb--\r\n")
	return b.Bytes()
}

// BenchmarkHostile parses each hostile message, beside the bare ceiling
// (an ordinary 3 KB mail). Run it with -benchtime=1x: on unbounded code
// one iteration of the worst case takes minutes.
//
//	go test -run '^$' -bench '^BenchmarkHostile$' -benchtime=1x -benchmem ./ingest
func BenchmarkHostile(b *testing.B) {
	cases := append([]hostileMessage{{name: "normal-3KB", raw: normalMail()}}, hostileCorpus()...)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.raw)))
			for b.Loop() {
				if _, err := Parse(c.raw); err != nil {
					b.Logf("Parse: %v", err)
				}
			}
		})
	}
}
