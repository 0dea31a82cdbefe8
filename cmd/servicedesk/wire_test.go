package main

import (
	"strings"
	"testing"

	"github.com/servicedesk/servicedesk/config"
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
