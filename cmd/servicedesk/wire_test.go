package main

import (
	"strings"
	"testing"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/ticket"
)

func TestNotifyTemplatesRefuseUnknownPlaceholders(t *testing.T) {
	t.Parallel()
	good := []config.Project{{Key: "acme", Templates: map[string]config.Template{
		"thank_you": {Text: "Thanks! We opened %{TICKET_REF}: %{ TICKET_URL }"}}}}
	got, err := notifyTemplates(good)
	if err != nil || got["acme"]["thank_you"].Text == "" {
		t.Fatalf("notifyTemplates(good) = %v, %v; want the thank_you template", got, err)
	}
	bad := []config.Project{{Key: "acme", Templates: map[string]config.Template{"note": {Text: "%{TICKET_NUMBER}"}}}}
	if _, err := notifyTemplates(bad); err == nil || !strings.Contains(err.Error(), "TICKET_NUMBER") {
		t.Fatalf("notifyTemplates(unknown placeholder) = %v; want an error naming it", err)
	}
}

// A new participant is an address a customer put in Cc: its template may
// not carry the ticket's text, so check and serve refuse one that asks.
func TestNotifyTemplatesKeepTicketTextFromNewParticipants(t *testing.T) {
	t.Parallel()
	leaky := []config.Project{{Key: "acme", Templates: map[string]config.Template{
		"new_participant": {Text: "You were added to %{TICKET_REF}:\n%{TICKET_DESCRIPTION}"}}}}
	if _, err := notifyTemplates(leaky); err == nil || !strings.Contains(err.Error(), "TICKET_DESCRIPTION") ||
		!strings.Contains(err.Error(), "new_participant") {
		t.Fatalf("notifyTemplates(new_participant with %%{TICKET_DESCRIPTION}) = %v; want an error naming both", err)
	}
}

// Every kind the configuration accepts a template for is one notify
// renders: a kind config knows and notify does not would pass the load
// and fail serve's start.
func TestNotifyTemplatesEveryConfigKind(t *testing.T) {
	t.Parallel()
	for _, kind := range config.TemplateKinds() {
		ps := []config.Project{{Key: "acme", Templates: map[string]config.Template{kind: {Text: "%{TICKET_REF}"}}}}
		if got, err := notifyTemplates(ps); err != nil || got["acme"][ticket.NotificationKind(kind)].Text != "%{TICKET_REF}" {
			t.Errorf("notifyTemplates(%s) = %v, %v; want the template", kind, got, err)
		}
	}
}
