package ingest

import (
	"strings"
	"testing"
)

func mustParse(t testing.TB, raw string) *Mail {
	t.Helper()
	m, err := Parse([]byte(raw))
	if err != nil {
		t.Fatalf("Parse(%q): %v", raw, err)
	}
	return m
}

func TestClassify(t *testing.T) {
	t.Parallel()
	const base = "From: Alice <alice@customer.test>\nTo: support@acme.test\nMessage-ID: <1@customer.test>\n"
	tests := []struct {
		name       string
		headers    string // added to base
		from       string // replaces the From line when set
		subject    string
		wantClass  Class
		wantReason string // substring
	}{
		{name: "plain customer mail", subject: "Printer broken", wantClass: ClassNormal},
		{name: "Auto-Submitted: no is a person", headers: "Auto-Submitted: no\n", wantClass: ClassNormal},
		{name: "Auto-Submitted: auto-replied", headers: "Auto-Submitted: auto-replied\n", wantClass: ClassAutoReply, wantReason: "Auto-Submitted: auto-replied"},
		{name: "Auto-Submitted: auto-generated", headers: "Auto-Submitted: auto-generated\n", wantClass: ClassAutoReply, wantReason: "auto-generated"},
		{name: "X-Autoreply: yes", headers: "X-Autoreply: yes\n", wantClass: ClassAutoReply, wantReason: "X-Autoreply"},
		{name: "X-Autorespond present", headers: "X-Autorespond: 1\n", wantClass: ClassAutoReply, wantReason: "X-Autorespond"},
		{name: "X-Autoresponse present", headers: "X-Autoresponse: vacation\n", wantClass: ClassAutoReply, wantReason: "X-Autoresponse"},
		{name: "X-Auto-Reply-From present", headers: "X-Auto-Reply-From: alice@customer.test\n", wantClass: ClassAutoReply, wantReason: "X-Auto-Reply-From"},
		{name: "Precedence: auto_reply", headers: "Precedence: auto_reply\n", wantClass: ClassAutoReply, wantReason: "Precedence: auto_reply"},
		{name: "Precedence: bulk", headers: "Precedence: bulk\n", wantClass: ClassBulk, wantReason: "Precedence: bulk"},
		{name: "Precedence: list", headers: "Precedence: list\n", wantClass: ClassBulk, wantReason: "Precedence: list"},
		{name: "Precedence: junk", headers: "Precedence: junk\n", wantClass: ClassBulk, wantReason: "Precedence: junk"},
		{name: "List-Id", headers: "List-Id: <news.vendor.test>\n", wantClass: ClassBulk, wantReason: "List-Id"},
		{name: "List-Unsubscribe", headers: "List-Unsubscribe: <mailto:u@vendor.test>\n", wantClass: ClassBulk, wantReason: "List-Unsubscribe"},
		{name: "our own List-Unsubscribe copied into a reply is not bulk",
			headers:   "List-Unsubscribe: <https://desk.acme.test/tickets/acme/12/unsubscribe?r=x&s=y>, <mailto:support+unsubscribe-c-abcdefghijklmnopqrst@acme.test?subject=unsubscribe%2012>\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\n",
			wantClass: ClassNormal},
		{name: "a List-Unsubscribe naming us and a vendor is bulk",
			headers: "List-Unsubscribe: <mailto:support+unsubscribe-c-x@acme.test>, <mailto:u@vendor.test>\n", wantClass: ClassBulk},
		{name: "X-Loop: yes", headers: "X-Loop: yes\n", wantClass: ClassAutoReply, wantReason: "X-Loop"},
		{name: "X-Loop naming our desk", headers: "X-Loop: support@acme.test\n", wantClass: ClassAutoReply, wantReason: "X-Loop"},
		{name: "X-Loop of a customer's forwarding rule", headers: "X-Loop: alice@customer.test\n", wantClass: ClassNormal},
		{name: "Exchange rules loop naming our desk", headers: "X-MS-Exchange-Inbox-Rules-Loop: support@acme.test\n", wantClass: ClassAutoReply, wantReason: "X-MS-Exchange-Inbox-Rules-Loop"},
		{name: "Exchange rules loop of a customer's forward", headers: "X-MS-Exchange-Inbox-Rules-Loop: alice@customer.test\n", wantClass: ClassNormal},
		{name: "X-Auto-Response-Suppress alone is not automatic", headers: "X-Auto-Response-Suppress: All\n", wantClass: ClassNormal},
		{name: "subject Out of Office", subject: "Out of Office: back Monday", wantClass: ClassAutoReply, wantReason: "Subject"},
		{name: "subject Auto-Reply:", subject: "Auto-Reply: your ticket", wantClass: ClassAutoReply},
		{name: "subject Automatic reply:", subject: "Automatic reply: Invoice", wantClass: ClassAutoReply},
		{name: "subject AUTORESPONSE", subject: "AUTORESPONSE", wantClass: ClassAutoReply},
		{name: "subject Abwesenheitsnotiz", subject: "Abwesenheitsnotiz: Rechnung", wantClass: ClassAutoReply},
		{name: "subject merely mentioning office", subject: "Printer in the office is out of toner", wantClass: ClassNormal},
		{name: "From mailer-daemon", from: "MAILER-DAEMON@mx.test", wantClass: ClassBounce, wantReason: "mailer-daemon@"},
		{name: "From postmaster", from: "Postmaster <postmaster@customer.test>", wantClass: ClassBounce, wantReason: "postmaster@"},
		{name: "Return-Path <> alone", headers: "Return-Path: <>\n", wantClass: ClassBounce, wantReason: "Return-Path"},
		{name: "Return-Path <> with Auto-Submitted is an auto-reply (RFC 3834)", headers: "Return-Path: <>\nAuto-Submitted: auto-replied\n", wantClass: ClassAutoReply},
		{name: "delivery-status report", headers: "Content-Type: multipart/report; report-type=delivery-status; boundary=x\n", wantClass: ClassBounce, wantReason: "delivery-status"},
		{name: "read receipt", headers: "Content-Type: multipart/report; report-type=disposition-notification; boundary=x\n", wantClass: ClassAutoReply, wantReason: "disposition-notification"},
		{name: "our own desk", from: "Acme <support@acme.test>", wantClass: ClassOwn, wantReason: "support@acme.test"},
		{name: "our own desk sub-address, another project", from: "help+r1@other.test", wantClass: ClassOwn},
		{name: "own wins over auto headers", from: "support@acme.test", headers: "Auto-Submitted: auto-replied\n", wantClass: ClassOwn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := base + tt.headers
			if tt.from != "" {
				raw = strings.Replace(raw, "From: Alice <alice@customer.test>", "From: "+tt.from, 1)
			}
			raw += "Subject: " + tt.subject + "\n\nbody\n"
			class, reason := Classify(mustParse(t, raw), deskAddresses)
			if class != tt.wantClass {
				t.Fatalf("Classify = %q (%q), want %q", class, reason, tt.wantClass)
			}
			if !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to mention %q", reason, tt.wantReason)
			}
			if class != ClassNormal && reason == "" {
				t.Errorf("class %q without a reason", class)
			}
		})
	}
}

func TestNoReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		want bool
	}{
		{"alice@customer.test", false},
		{"Bob.Builder@customer.test", false},
		{"replies@customer.test", false},
		{"bouncer-team@customer.test", false},
		{"MAILER-DAEMON@mx.test", true},
		{"postmaster@customer.test", true},
		{"abuse@customer.test", true},
		{"root@host.test", true},
		{"noreply@shop.test", true},
		{"no-reply@shop.test", true},
		{"no_reply@shop.test", true},
		{"do-not-reply@shop.test", true},
		{"donotreply@shop.test", true},
		{"noreply-orders@shop.test", true},
		{"orders-noreply@shop.test", true},
		{"bounce@lists.test", true},
		{"bounces+123-abc@lists.test", true},
		{"bounces-news@lists.test", true},
		{"noreply+tag@shop.test", true},
		{"", true},
		{"not an address", true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			if got := NoReply(tt.addr); got != tt.want {
				t.Errorf("NoReply(%q) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestMatchesAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr, desk string
		want       bool
	}{
		{"support@acme.test", "support@acme.test", true},
		{"Support@ACME.test", "support@acme.test", true},
		{"support+anything@acme.test", "support@acme.test", true},
		{"support+r1-c-abc@acme.test", "Support@Acme.Test", true},
		{"supporter@acme.test", "support@acme.test", false},
		{"support@acme.test.evil", "support@acme.test", false},
		{"support@other.test", "support@acme.test", false},
		{"x-support@acme.test", "support@acme.test", false},
		{"", "support@acme.test", false},
		{"support@acme.test", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr+" vs "+tt.desk, func(t *testing.T) {
			t.Parallel()
			if got := MatchesAddress(tt.addr, tt.desk); got != tt.want {
				t.Errorf("MatchesAddress(%q, %q) = %v, want %v", tt.addr, tt.desk, got, tt.want)
			}
		})
	}
}

func TestBounceOriginal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		raw       string
		wantID    string
		wantRcpts []string
	}{
		{
			name: "DSN nested in multipart/mixed with text/rfc822-headers",
			raw: "From: postmaster@mx.test\nTo: support@acme.test\nSubject: Undeliverable\n" +
				"Content-Type: multipart/mixed; boundary=b\n\n" +
				"--b\nContent-Type: text/plain\n\nfailed\n" +
				"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.test\n\n" +
				"Final-Recipient: rfc822; a@x.test\nAction: failed\nStatus: 5.1.1\n\n" +
				"Final-Recipient: rfc822; b@x.test\nAction: delayed\nStatus: 4.4.1\n\n" +
				"--b\nContent-Type: text/rfc822-headers\n\nMessage-ID: <orig-1@acme.test>\nSubject: hi\n\n" +
				"--b--\n",
			wantID: "<orig-1@acme.test>", wantRcpts: []string{"a@x.test"},
		},
		{
			name: "qmail-style text bounce quoting the original",
			raw: "From: MAILER-DAEMON@mx.test\nTo: support@acme.test\nSubject: failure notice\n" +
				"X-Failed-Recipients: c@x.test\n\nSorry.\n\n--- Below this line is a copy of the message.\n\n" +
				"Message-ID: <orig-2@acme.test>\nSubject: hi\n",
			wantID: "<orig-2@acme.test>", wantRcpts: []string{"c@x.test"},
		},
		{
			name:   "nothing known",
			raw:    "From: MAILER-DAEMON@mx.test\nSubject: failure\n\nno details\n",
			wantID: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, rcpts := BounceOriginal(mustParse(t, tt.raw))
			wantEqual(t, "message id", id, tt.wantID)
			wantList(t, "recipients", rcpts, tt.wantRcpts...)
		})
	}
}
