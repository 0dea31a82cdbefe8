package mailbox_test

import (
	"testing"

	"github.com/servicedesk/servicedesk/mailbox"
)

// Envelopes names messages by their header without downloading them: the
// Message-ID with its brackets (as ingest records it), the first From
// address and the decoded Subject; a UID that does not exist is left out.
func TestEnvelopesNameMessagesWithoutTheirBodies(t *testing.T) {
	c := dial(t, memServer(t))
	if _, err := c.Select(t.Context(), "INBOX"); err != nil {
		t.Fatalf("select INBOX: %v", err)
	}
	uids := appendN(t, c, "INBOX", 2)
	raw := []byte("From: =?utf-8?q?J=C3=BCrgen?= <juergen@customer.test>\r\nTo: <support@example.test>\r\n" +
		"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <big@customer.test>\r\n\r\nbody\r\n")
	big, err := c.Append(t.Context(), "INBOX", raw)
	if err != nil {
		t.Fatalf("append: %v", err)
	}

	envs, err := c.Envelopes(t.Context(), []uint32{big, uids[1], 999})
	if err != nil {
		t.Fatalf("Envelopes: %v", err)
	}
	want := map[uint32]mailbox.Envelope{
		big:     {MessageID: "<big@customer.test>", From: "juergen@customer.test", Subject: "Grüße"},
		uids[1]: {MessageID: "<m1@customer.test>", From: "customer1@customer.test", Subject: "message 1"},
	}
	if len(envs) != len(want) {
		t.Fatalf("Envelopes = %+v; want exactly %+v (no entry for UID 999)", envs, want)
	}
	for uid, w := range want {
		if envs[uid] != w {
			t.Errorf("envelope of UID %d = %+v; want %+v", uid, envs[uid], w)
		}
	}
}
