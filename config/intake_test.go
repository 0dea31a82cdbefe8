package config

import (
	"strings"
	"testing"
	"time"
)

const withIntake = `
mail:
  reply_key_secret: 0123456789abcdef0123
intake:
  address: Incoming@Intake.test
  imap: {host: imap.intake.test, password: intake-secret, poll_interval: 5s}
projects:
  - key: acme
    address: support@acme.test
    aliases: [Help@Acme.test]
    smtp: {host: 127.0.0.1}
  - key: beta
    address: support@beta.test
    imap: {host: 127.0.0.1, password: beta-secret}
    smtp: {host: 127.0.0.1}
`

func TestIntakeConfig(t *testing.T) {
	t.Parallel()
	t.Run("an intake serves desks without a mailbox; desks with one keep it", func(t *testing.T) {
		c, err := Parse([]byte(withIntake), []string{"SERVICEDESK_INTAKE_IMAP_USERNAME=robot"})
		if err != nil {
			t.Fatalf("Parse = %v", err)
		}
		in := c.Intake
		if !in.Enabled() || in.Address != "incoming@intake.test" || in.IMAP.Port != 993 || in.IMAP.Folder != "INBOX" ||
			in.IMAP.PollInterval.D() != 5*time.Second || in.IMAP.AfterProcessing != "seen" || in.IMAP.Username != "robot" {
			t.Fatalf("intake = %+v; want the address lower-cased, imap defaults and the env override", in)
		}
		acme, beta := c.Projects[0], c.Projects[1]
		if acme.HasMailbox() || !beta.HasMailbox() {
			t.Fatalf("HasMailbox: acme %v, beta %v; want false, true", acme.HasMailbox(), beta.HasMailbox())
		}
		if len(acme.Aliases) != 1 || acme.Aliases[0] != "help@acme.test" {
			t.Fatalf("aliases = %q; want lower-cased", acme.Aliases)
		}
	})
	t.Run("a config without intake stays as it was", func(t *testing.T) {
		c, err := Parse([]byte(minimal), nil)
		if err != nil || c.Intake.Enabled() || !c.Projects[0].HasMailbox() {
			t.Fatalf("Parse(minimal) = %v, intake %+v", err, c.Intake)
		}
	})
	t.Run("the intake may be a Microsoft Graph mailbox", func(t *testing.T) {
		graphIntake := strings.Replace(withIntake, "imap: {host: imap.intake.test, password: intake-secret, poll_interval: 5s}",
			"graph: {tenant_id: t-1, client_id: c-1, client_secret: s-1}", 1)
		c, err := Parse([]byte(graphIntake), nil)
		if err != nil {
			t.Fatalf("Parse = %v", err)
		}
		if g := c.Intake.Graph; !g.Configured() || g.User != "incoming@intake.test" || c.Intake.IMAP.Host != "" {
			t.Fatalf("intake graph = %+v; want it configured, user defaulting to the intake address", g)
		}
	})
	bad := []struct {
		name, from, to, want string
	}{
		{"the intake is imap or graph, not both", "poll_interval: 5s}\n", "poll_interval: 5s}\n  graph: {tenant_id: t, client_id: c, client_secret: s}\n", "intake: imap and graph are both set"},
		{"a desk needs its own mailbox or an intake", "intake:\n  address: Incoming@Intake.test\n  imap: {host: imap.intake.test, password: intake-secret, poll_interval: 5s}\n", "",
			"projects[0] (acme).imap.host: required (or set intake: so that the intake mailbox serves the desk)"},
		{"the intake needs a mailbox", "imap: {host: imap.intake.test, password: intake-secret, poll_interval: 5s}", "imap: {password: x}", "intake.imap.host: required"},
		{"the intake password is required", "password: intake-secret, ", "", "intake.imap.password: required"},
		{"the intake address is bare, without +tag", "Incoming@Intake.test", "incoming+x@intake.test", "intake.address"},
		{"an alias is a bare address", "[Help@Acme.test]", "[Help <help@acme.test>]", "aliases[0]"},
		{"an alias is one desk's", "[Help@Acme.test]", "[support@beta.test]", `address "support@beta.test" is also projects[1] (beta)'s`},
		{"the intake address is no desk's", "Incoming@Intake.test", "support@beta.test", `intake: address "support@beta.test" is also projects[1] (beta)'s`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(withIntake, tt.from, tt.to, 1)), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v; want an error with %q", err, tt.want)
			}
		})
	}
}

func TestIntakeAddressesOfDesks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, from, to, want string // want "" = valid
	}{
		{"a desk may use incoming+<its key>@ as its address", "address: support@acme.test", "address: incoming+acme@intake.test", ""},
		{"a desk address is compared without +tag", "aliases: [Help@Acme.test]", "aliases: [support+x@beta.test]",
			`address "support+x@beta.test" is also projects[1] (beta)'s`},
		{"incoming+<another key>@ is the intake's", "aliases: [Help@Acme.test]", "aliases: [incoming+beta@intake.test]",
			`address "incoming+beta@intake.test" is also intake's`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(withIntake, tt.from, tt.to, 1)), nil)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Parse = %v; want %q", err, tt.want)
			}
		})
	}
}
