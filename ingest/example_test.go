package ingest_test

import (
	"fmt"

	"github.com/servicedesk/servicedesk/ingest"
)

func ExampleParse() {
	raw := []byte("From ivy@mbox.test Mon Mar 17 10:00:00 2025\n" +
		"From: =?iso-8859-1?Q?J=F6rg?= <Joerg@Example.test>\n" +
		"To: support+billing@acme.test\n" +
		"References: <a@x>,<b@y>\n" +
		"Subject: =?iso-8859-1?Q?M=E4rz?=\n\nHallo\n")
	m, err := ingest.Parse(raw)
	if err != nil {
		panic(err)
	}
	fmt.Println(m.From, m.FromName, m.Subject, m.References, m.Warnings)
	// Output: joerg@example.test Jörg März [<a@x> <b@y>] [dropped mbox From_ line]
}

func ExampleClassify() {
	m, _ := ingest.Parse([]byte("From: grace@navy.test\nTo: support@acme.test\n" +
		"Auto-Submitted: auto-replied\nSubject: Out of Office\n\nAway.\n"))
	class, reason := ingest.Classify(m, []string{"support@acme.test"})
	fmt.Println(class, "-", reason)
	// Output: auto_reply - Auto-Submitted: auto-replied
}
