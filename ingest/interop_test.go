package ingest

import (
	"testing"

	"github.com/servicedesk/servicedesk/ticket"
)

// TestProcessAttachmentOnlyMail states that a mail whose whole body is one
// attachment (a scanner's image, a phone's photo) opens a ticket with an
// empty text and the attachment on its message.
func TestProcessAttachmentOnlyMail(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"attachment-only-image.eml", "attachment-only-csv.eml"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			_, d := setup(t, nil).process(t, readCorpus(t, file))
			wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeTicketCreated)
			wantEqual(t, "Text", d.Message.Text, "")
			wantEqual(t, "attachments", len(d.Message.Attachments), 1)
			if a := d.Message.Attachments[0]; a.Size == 0 || len(a.Data) != int(a.Size) {
				t.Fatalf("attachment = %s, %d bytes, %d of data; want its content", a.Filename, a.Size, len(a.Data))
			}
		})
	}
}
