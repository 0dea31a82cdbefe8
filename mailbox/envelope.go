package mailbox

import (
	"context"
	"fmt"

	"github.com/emersion/go-imap/v2"
)

// Envelope is what the server parsed of a message's header (IMAP
// ENVELOPE, RFC 3501 7.4.2): enough to name a message without downloading
// it.
type Envelope struct {
	// MessageID is "<id@host>" with brackets, as ingest records it; "" if none.
	MessageID string
	// From is the first From address, "" if none.
	From string
	// Subject is decoded (RFC 2047).
	Subject string
}

// envelopeMaxUIDs bounds the UIDs of one UID FETCH ENVELOPE.
const envelopeMaxUIDs = 500

// Envelopes returns the envelopes of the messages with the given UIDs,
// without their bodies. UIDs that no longer exist are missing from the map.
func (c *Client) Envelopes(ctx context.Context, uids []uint32) (map[uint32]Envelope, error) {
	uids = sortedUnique(uids)
	out := make(map[uint32]Envelope, len(uids))
	for len(uids) > 0 {
		n := min(len(uids), envelopeMaxUIDs)
		chunk := uids[:n]
		uids = uids[n:]
		err := c.do(ctx, func() error {
			msgs, err := c.ic.Fetch(uidSet(chunk), &imap.FetchOptions{UID: true, Envelope: true}).Collect()
			if err != nil {
				return fmt.Errorf("uid fetch envelope: %w", err)
			}
			for _, m := range msgs {
				if m.UID == 0 || m.Envelope == nil {
					continue
				}
				out[uint32(m.UID)] = envelopeOf(m.Envelope)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read envelopes %v in %q: %w", uidSet(chunk), c.selected, err)
		}
	}
	return out, nil
}

func envelopeOf(e *imap.Envelope) Envelope {
	env := Envelope{Subject: e.Subject}
	if e.MessageID != "" {
		env.MessageID = "<" + e.MessageID + ">"
	}
	for _, a := range e.From {
		if addr := a.Addr(); addr != "" {
			env.From = addr
			break
		}
	}
	return env
}
