package jobs

import (
	"context"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/servicedesk/servicedesk/ticket"
)

// DeadLetterStore re-arms and resolves dead letters.
type DeadLetterStore interface {
	RetryDeadLetter(ctx context.Context, id int64) (ticket.DeadLetter, error)
	DiscardDeadLetter(ctx context.Context, id int64) error
	Inbound(ctx context.Context, id int64) (ticket.Inbound, error)
}

// DeadLetters retries and discards dead letters for the CLI and the API.
type DeadLetters struct {
	store     DeadLetterStore
	enqueue   *Enqueuer
	inspector *asynq.Inspector
}

// NewDeadLetters wires the dead-letter operations.
func NewDeadLetters(st DeadLetterStore, enq *Enqueuer, insp *asynq.Inspector) *DeadLetters {
	return &DeadLetters{store: st, enqueue: enq, inspector: insp}
}

// Retry re-arms the dead letter in the store and queues its work again:
// the message is processed again, a refused one is downloaded again by the
// next fetch (run at once), a notification is sent again.
func (d *DeadLetters) Retry(ctx context.Context, id int64) error {
	dl, err := d.store.RetryDeadLetter(ctx, id)
	if err != nil {
		return err
	}
	switch dl.Kind {
	case ticket.DeadInbound:
		in, err := d.store.Inbound(ctx, dl.InboundID)
		if err != nil {
			return fmt.Errorf("load inbound %d: %w", dl.InboundID, err)
		}
		if in.RawSHA256 == "" {
			_, err = d.enqueue.Fetch(ctx, in.Project, fmt.Sprintf("retry:%d", dl.ID), 0)
			return err
		}
		d.forget(QueueIngest, processTaskID(dl.InboundID))
		_, err = d.enqueue.Process(ctx, dl.InboundID)
		return err
	case ticket.DeadOutbound:
		d.forget(QueueNotify, sendTaskID(dl.NotificationID))
		_, err = d.enqueue.Send(ctx, dl.NotificationID)
		return err
	}
	return fmt.Errorf("dead letter %d: unknown kind %q", id, dl.Kind)
}

// Discard resolves the dead letter without doing anything more.
func (d *DeadLetters) Discard(ctx context.Context, id int64) error {
	return d.store.DiscardDeadLetter(ctx, id)
}

// forget deletes the archived task that holds the task ID, so the retry can
// be enqueued under the same ID (asynq refuses an ID an archived task holds).
func (d *DeadLetters) forget(queue, taskID string) {
	if d.inspector == nil {
		return
	}
	// Best effort: when the task is still queued or retrying, the enqueue
	// that follows is a no-op and that task does the work.
	_ = d.inspector.DeleteTask(queue, taskID)
}
