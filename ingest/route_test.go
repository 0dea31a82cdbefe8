package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// routeDesks are the desks of the routing tests: acme by its address,
// beta by a forwarded custom address with an alias.
var routeDesks = []Project{
	{ID: 1, Key: "acme", Address: "support@acme.test"},
	{ID: 2, Key: "beta", Address: "help@beta.test", Aliases: []string{"billing@beta.test", "Sales@Beta.test"}},
}

const routeIntake = "incoming@intake.test"

func routeMail(t *testing.T, headers string) *Mail {
	t.Helper()
	return mustParse(t, "From: Alice <alice@customer.test>\r\n"+strings.ReplaceAll(headers, "\n", "\r\n")+
		"Subject: Printer on fire\r\nMessage-ID: <m1@customer.test>\r\n\r\nHelp.\r\n")
}

func TestRouteHeaderByHeader(t *testing.T) {
	t.Parallel()
	r := NewRouter(routeIntake, routeDesks)
	tests := []struct {
		name, headers string
		want          string // desk key; "" = unroutable
		rule          string // the ledger's rule
	}{
		{"To names the desk", "To: support@acme.test\n", "acme", "To: support@acme.test"},
		{"To names a +tag of the desk", "To: help+urgent@beta.test\n", "beta", "To: help+urgent@beta.test"},
		{"To names an alias, any case", "To: SALES@beta.TEST\n", "beta", "To: sales@beta.test"},
		{"Cc names the desk", "To: bob@customer.test\nCc: Help <help@beta.test>\n", "beta", "Cc: help@beta.test"},
		{"To wins over Cc", "To: help@beta.test\nCc: support@acme.test\n", "beta", "To: help@beta.test"},
		{"To wins over the forwarding headers", "To: help@beta.test\nX-Forwarded-To: support@acme.test\n", "beta", "To: help@beta.test"},
		{"Delivered-To", "To: undisclosed-recipients:;\nDelivered-To: support@acme.test\n", "acme", "Delivered-To: support@acme.test"},
		{"X-Delivered-To", "To: team@customer.test\nX-Delivered-To: support@acme.test\n", "acme", "X-Delivered-To: support@acme.test"},
		{"Envelope-To", "To: team@customer.test\nEnvelope-To: billing@beta.test\n", "beta", "Envelope-To: billing@beta.test"},
		{"X-Envelope-To", "To: team@customer.test\nX-Envelope-To: <support@acme.test>\n", "acme", "X-Envelope-To: support@acme.test"},
		{"Received for <addr>", "To: team@customer.test\nReceived: from mx.customer.test (mx.customer.test [192.0.2.1])\n" +
			"\tby mx.acme.test (Postfix) with ESMTPS id 4Xy\n\tfor <support@acme.test>; Thu, 3 Dec 2026 10:00:00 +0000\n",
			"acme", "Received: support@acme.test"},
		{"Received for addr without brackets", "To: team@customer.test\nReceived: by mx.beta.test with SMTP id x for help@beta.test; Thu, 3 Dec 2026 10:00:00 +0000\n",
			"beta", "Received: help@beta.test"},
		{"a Received from <addr> is no recipient", "To: team@customer.test\nReceived: from <support@acme.test> by mx.test; Thu, 3 Dec 2026 10:00:00 +0000\n", "", ""},
		{"X-Original-To", "To: team@customer.test\nX-Original-To: support@acme.test\n", "acme", "X-Original-To: support@acme.test"},
		{"X-Forwarded-To", "To: team@customer.test\nX-Forwarded-To: help@beta.test\n", "beta", "X-Forwarded-To: help@beta.test"},
		{"X-Forwarded-For (Gmail, space separated)", "To: team@customer.test\nX-Forwarded-For: billing@beta.test incoming@intake.test\n", "beta", "X-Forwarded-For: billing@beta.test"},
		{"X-MS-Exchange-ForwardingLoop (address;tenant)", "To: team@customer.test\nX-MS-Exchange-ForwardingLoop: support@acme.test;72f988bf-86f1-41af-91ab-2d7cd011db47\n", "acme", "X-MS-Exchange-ForwardingLoop: support@acme.test"},
		{"X-MS-Exchange-Inbox-Rules-Loop", "To: team@customer.test\nX-MS-Exchange-Inbox-Rules-Loop: help@beta.test\n", "beta", "X-MS-Exchange-Inbox-Rules-Loop: help@beta.test"},
		{"forwarding headers in GitLab's order: Delivered-To before X-Forwarded-To", "To: team@customer.test\nX-Forwarded-To: help@beta.test\nDelivered-To: support@acme.test\n", "acme", "Delivered-To: support@acme.test"},
		{"sub-address incoming+key@", "To: incoming+beta@intake.test\n", "beta", "sub-address To: incoming+beta@intake.test"},
		{"sub-address wins over a desk address in To", "To: support@acme.test, incoming+beta@intake.test\n", "beta", "sub-address To: incoming+beta@intake.test"},
		{"sub-address in Delivered-To", "To: team@customer.test\nDelivered-To: incoming+acme@intake.test\n", "acme", "sub-address Delivered-To: incoming+acme@intake.test"},
		{"sub-address of an unknown key falls through to the headers", "To: incoming+nope@intake.test\nCc: help@beta.test\n", "beta", "Cc: help@beta.test"},
		{"sub-address of another domain is no intake address", "To: incoming+acme@elsewhere.test\n", "", ""},
		{"the intake address alone names no desk", "To: incoming@intake.test\nDelivered-To: incoming@intake.test\n", "", ""},
		{"a look-alike of the desk is no desk", "To: support@acme.test.evil.test, xsupport@acme.test\n", "", ""},
		{"nothing names a desk", "To: team@customer.test\n", "", ""},

		// Whole forwarding shapes as they arrive at the intake mailbox.
		{"Microsoft 365 forwarding of a Bcc'd desk", "To: team@customer.test\n" +
			"Received: from EUR05-AM6-obe.outbound.protection.outlook.com (mail-am6eur05on2100.outbound.protection.outlook.com [40.107.22.100])\n" +
			"\tby mx.intake.test (Postfix) with ESMTPS id 4Q\n\tfor <incoming@intake.test>; Thu, 3 Dec 2026 10:00:02 +0000\n" +
			"X-MS-Exchange-ForwardingLoop: help@beta.test;a1b2c3d4-0000-4000-8000-000000000001\n" +
			"X-MS-Exchange-Inbox-Rules-Loop: help@beta.test\n" +
			"X-MS-Exchange-CrossTenant-Network-Message-Id: 5c1d-4e\n" +
			"X-MS-Exchange-CrossTenant-OriginalArrivalTime: 03 Dec 2026 10:00:01.0000 (UTC)\n" +
			"X-MS-Exchange-Transport-CrossTenantHeadersStamped: AM6PR05MB1234\n" +
			"X-Forwarded-To: incoming@intake.test\n" +
			"Delivered-To: incoming@intake.test\n",
			"beta", "X-MS-Exchange-ForwardingLoop: help@beta.test"},
		{"Microsoft 365 forwarding keeps the original To", "To: Beta Help <help@beta.test>\n" +
			"X-MS-Exchange-Inbox-Rules-Loop: help@beta.test\nX-MS-Exchange-CrossTenant-Id: a1b2c3d4\nDelivered-To: incoming@intake.test\n",
			"beta", "To: help@beta.test"},
		{"Gmail forwarding of a Bcc'd desk", "To: team@customer.test\n" +
			"Delivered-To: incoming@intake.test\n" +
			"Received: by 2002:a05:6402:1234 with SMTP id x; Thu, 3 Dec 2026 10:00:03 -0800 (PST)\n" +
			"X-Forwarded-To: incoming@intake.test\n" +
			"X-Forwarded-For: support@acme.test incoming@intake.test\n" +
			"Delivered-To: support@acme.test\n",
			"acme", "Delivered-To: support@acme.test"},
		{"Postfix virtual alias to the intake", "To: team@customer.test\n" +
			"Delivered-To: incoming@intake.test\n" +
			"X-Original-To: billing@beta.test\n" +
			"Received: from mx.customer.test (mx.customer.test [192.0.2.7])\n\tby mx.intake.test (Postfix) with ESMTP id 9F\n\tfor <billing@beta.test>; Thu, 3 Dec 2026 10:00:04 +0000\n",
			"beta", "Received: billing@beta.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok, err := r.Route(context.Background(), routeMail(t, tt.headers), nil)
			if err != nil {
				t.Fatalf("Route: %v", err)
			}
			if tt.want == "" {
				if ok {
					t.Fatalf("Route = %s by %q; want unroutable", got.Project.Key, got.Rule)
				}
				return
			}
			if !ok || got.Project.Key != tt.want || got.Rule != tt.rule {
				t.Fatalf("Route = %q by %q (ok %v); want %q by %q", got.Project.Key, got.Rule, ok, tt.want, tt.rule)
			}
		})
	}
}

func TestRouteByReplyKey(t *testing.T) {
	t.Parallel()
	r := NewRouter(routeIntake, routeDesks)
	const key = "r1-c-abcdefghijklmnopqrst" // the shape of a key; owner decides if it is valid
	owner := func(valid bool, err error) (KeyOwner, *[]string) {
		var asked []string
		return func(_ context.Context, k string) (Project, bool, error) {
			asked = append(asked, k)
			return routeDesks[1], valid && err == nil, err
		}, &asked
	}

	t.Run("a valid key in the reply address wins over every header", func(t *testing.T) {
		o, _ := owner(true, nil)
		got, ok, err := r.Route(context.Background(), routeMail(t, "To: support+"+key+"@acme.test\n"), o)
		if err != nil || !ok || got.Project.Key != "beta" || got.Rule != "reply key" {
			t.Fatalf("Route = %q by %q, %v, %v; want beta by reply key", got.Project.Key, got.Rule, ok, err)
		}
	})
	t.Run("a valid key in References routes a reply whose client dropped the Reply-To", func(t *testing.T) {
		o, _ := owner(true, nil)
		got, ok, _ := r.Route(context.Background(), routeMail(t, "To: someone@customer.test\nReferences: <"+key+"@acme.test>\n"), o)
		if !ok || got.Rule != "reply key" {
			t.Fatalf("Route = %q by %q, %v; want by reply key", got.Project.Key, got.Rule, ok)
		}
	})
	t.Run("an invalid key falls through to the headers", func(t *testing.T) {
		o, asked := owner(false, nil)
		got, ok, _ := r.Route(context.Background(), routeMail(t, "To: support+"+key+"@acme.test\n"), o)
		if !ok || got.Project.Key != "acme" || got.Rule != "To: support+"+key+"@acme.test" {
			t.Fatalf("Route = %q by %q, %v; want acme by To", got.Project.Key, got.Rule, ok)
		}
		if len(*asked) != 1 {
			t.Fatalf("owner asked %d times (%v); want once per distinct key", len(*asked), *asked)
		}
	})
	t.Run("a failing lookup is an error, not a guess", func(t *testing.T) {
		o, _ := owner(true, errors.New("database down"))
		if _, ok, err := r.Route(context.Background(), routeMail(t, "To: support+"+key+"@acme.test\n"), o); err == nil || ok {
			t.Fatalf("Route ok %v, err %v; want the lookup's error", ok, err)
		}
	})
	t.Run("at most maxRouteKeys distinct keys are looked up", func(t *testing.T) {
		var refs []string
		for i := range 3 * maxRouteKeys {
			refs = append(refs, fmt.Sprintf("<r1-%s-abcdefghijklmnopqrst@acme.test>", strings.Repeat("z", 1+i%12)+fmt.Sprint(i)))
		}
		o, asked := owner(false, nil)
		r.Route(context.Background(), routeMail(t, "To: team@customer.test\nReferences: "+strings.Join(refs, " ")+"\n"), o)
		if len(*asked) != maxRouteKeys {
			t.Fatalf("owner asked %d times; want %d", len(*asked), maxRouteKeys)
		}
	})
}

func TestRouteReadsBoundedReceived(t *testing.T) {
	t.Parallel()
	r := NewRouter(routeIntake, routeDesks)
	var hdr strings.Builder
	hdr.WriteString("To: team@customer.test\n")
	for i := range DefaultLimits().Received {
		fmt.Fprintf(&hdr, "Received: from hop%d.test by hop%d.test for <nobody%d@relay.test>; Thu, 3 Dec 2026 10:00:00 +0000\n", i, i+1, i)
	}
	hdr.WriteString("Received: from old.test by old.test for <support@acme.test>; Thu, 3 Dec 2026 09:00:00 +0000\n")
	m := routeMail(t, hdr.String())
	if got, ok, _ := r.Route(context.Background(), m, nil); ok {
		t.Fatalf("Route = %q by %q; want the Received field past Limits.Received unread", got.Project.Key, got.Rule)
	}
	n := 0
	for _, rc := range m.Recipients {
		if rc.Header == "Received" {
			n++
		}
	}
	if n != DefaultLimits().Received {
		t.Fatalf("%d Received recipients; want %d", n, DefaultLimits().Received)
	}
}

func TestCarriedListsEachAddressWithItsHeaders(t *testing.T) {
	t.Parallel()
	m := routeMail(t, "To: team@customer.test, bob@customer.test\nCc: team@customer.test\nDelivered-To: incoming@intake.test\nX-Original-To: typo@acme.test\n")
	got, more := m.Carried(3)
	want := []string{"team@customer.test (To, Cc)", "bob@customer.test (To)", "incoming@intake.test (Delivered-To)"}
	if strings.Join(got, "|") != strings.Join(want, "|") || more != 1 {
		t.Fatalf("Carried(3) = %q, %d more; want %q, 1 more", got, more, want)
	}
}

func TestRouteDeskAtTheIntake(t *testing.T) {
	t.Parallel()
	r := NewRouter(routeIntake, append([]Project{{ID: 3, Key: "gamma", Address: "incoming+gamma@intake.test"}}, routeDesks...))
	got, ok, _ := r.Route(context.Background(), routeMail(t, "To: incoming+gamma@intake.test\n"), nil)
	if !ok || got.Project.Key != "gamma" {
		t.Fatalf("Route = %q, %v; want gamma by its sub-address", got.Project.Key, ok)
	}
	if got, ok, _ := r.Route(context.Background(), routeMail(t, "To: incoming@intake.test\n"), nil); ok {
		t.Fatalf("Route = %q; want the bare intake address to name no desk, not gamma's", got.Project.Key)
	}
}

// BenchmarkRoute routes mail of the intake among 1,000 desks with 2,000
// aliases, beside the ceiling it is read against: parsing the same mail,
// which every routed mail costs first. Routing looks each recipient up in
// a map, so it stays a small fraction of the parse whatever the number of
// desks; the worst case carries the most recipients the parse keeps (100
// per header) and names no desk.
//
//	go test -run '^$' -bench '^BenchmarkRoute$' -benchmem ./ingest
func BenchmarkRoute(b *testing.B) {
	var desks []Project
	for i := range 1000 {
		desks = append(desks, Project{ID: int64(i + 1), Key: fmt.Sprintf("desk%d", i), Address: fmt.Sprintf("support@desk%d.test", i),
			Aliases: []string{fmt.Sprintf("help@desk%d.test", i), fmt.Sprintf("sales@desk%d.test", i)}})
	}
	r := NewRouter(routeIntake, desks)
	forwarded := []byte("From: Alice <alice@customer.test>\r\nTo: team@customer.test\r\nDelivered-To: incoming@intake.test\r\n" +
		"Received: from mx.customer.test by mx.intake.test with ESMTPS id 4Q for <incoming@intake.test>; Thu, 3 Dec 2026 10:00:02 +0000\r\n" +
		"X-MS-Exchange-ForwardingLoop: sales@desk999.test;72f988bf\r\nSubject: VPN\r\nMessage-ID: <b@customer.test>\r\n\r\nHelp.\r\n")
	var worst bytes.Buffer
	worst.WriteString("From: alice@customer.test\r\nSubject: many\r\nMessage-ID: <w@customer.test>\r\n")
	for _, h := range RecipientHeaders {
		if h == "Received" {
			for i := range 30 {
				fmt.Fprintf(&worst, "Received: by hop%d.test for <r%d@relay.test>; Thu, 3 Dec 2026 10:00:00 +0000\r\n", i, i)
			}
			continue
		}
		worst.WriteString(h + ": ")
		for i := range 100 {
			fmt.Fprintf(&worst, "x%d@%s.test, ", i, strings.ToLower(h))
		}
		worst.WriteString("last@nowhere.test\r\n")
	}
	worst.WriteString("\r\nx\r\n")
	for _, c := range []struct {
		name string
		raw  []byte
		want bool
	}{{"forwarded", forwarded, true}, {"worst-unroutable", worst.Bytes(), false}} {
		b.Run(c.name+"/parse-ceiling", func(b *testing.B) {
			for b.Loop() {
				if _, err := Parse(c.raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/route-1000-desks", func(b *testing.B) {
			m, err := Parse(c.raw)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, ok, _ := r.Route(context.Background(), m, nil); ok != c.want {
					b.Fatalf("routed %v; want %v", ok, c.want)
				}
			}
		})
	}
}
