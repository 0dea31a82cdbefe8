// Package jobs is the only asynq-aware package: task types and payloads, the
// handlers that join mailbox, ingest, store and notify, the scheduler that
// makes every mailbox due every poll_interval, retry ladders and dead letters.
//
// Guarantees come from Redis and the database, never from a home-made
// coordinator: task IDs (asynq, Redis) make enqueues from any number of
// schedulers collapse into one, a database lease keeps two fetches of one
// mailbox from overlapping, and unique keys in the store make every handler
// idempotent under asynq's at-least-once delivery.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Task type names: stable, they are stored in Redis.
const (
	TypeFetch   = "ingest:fetch_mailbox"
	TypeProcess = "ingest:process_message"
	TypeSend    = "notify:send"
)

// Queues. Fetches have their own queue so that a broken mailbox's failures
// never crowd out failed messages in asynq's capped archive; notifications
// run on their own server so a slow SMTP server never delays ingestion.
const (
	QueueFetch   = "fetch"
	QueueIngest  = "ingest"
	QueueNotify  = "notify"
	fetchTimeout = 10 * time.Minute
)

// FetchPayload names the mailbox to fetch, by project key.
type FetchPayload struct {
	Project string `json:"project"`
}

// ProcessPayload names a row of the inbound ledger; the raw mail stays in
// the store, never in Redis.
type ProcessPayload struct {
	InboundID int64 `json:"inbound_id"`
}

// SendPayload names an outbound notification.
type SendPayload struct {
	NotificationID int64 `json:"notification_id"`
}

func fetchTaskID(project, slot string) string { return "fetch:" + project + ":" + slot }
func processTaskID(inboundID int64) string    { return fmt.Sprintf("process:%d", inboundID) }
func sendTaskID(notificationID int64) string  { return fmt.Sprintf("send:%d", notificationID) }
func mustJSON(v any) []byte                   { b, _ := json.Marshal(v); return b }
func decode[T any](t *asynq.Task) (T, error) {
	var p T
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return p, fmt.Errorf("decode %s payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	return p, nil
}

// Enqueuer puts tasks on the queues. Every task carries a task ID, so that
// enqueuing the same work twice (two schedulers, a sweep after a crash) is a
// no-op: Redis decides, atomically.
type Enqueuer struct {
	client *asynq.Client
	opts   Retries
}

// Retries sets how often tasks are retried before they become dead letters.
type Retries struct {
	Process int // default 8
	Send    int // default 12
}

// NewEnqueuer wraps an asynq client.
func NewEnqueuer(c *asynq.Client, r Retries) *Enqueuer {
	if r.Process == 0 {
		r.Process = 8
	}
	if r.Send == 0 {
		r.Send = 12
	}
	return &Enqueuer{client: c, opts: r}
}

// enqueue treats a task-ID conflict as success: the work is already queued,
// running, retrying, or was done in the retention window.
func (e *Enqueuer) enqueue(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (bool, error) {
	_, err := e.client.EnqueueContext(ctx, t, opts...)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, asynq.ErrTaskIDConflict), errors.Is(err, asynq.ErrDuplicateTask):
		return false, nil
	default:
		return false, fmt.Errorf("enqueue %s: %w", t.Type(), err)
	}
}

// Fetch enqueues a fetch of project's mailbox for the named slot. The task
// is retained for retain after it finishes, so a late scheduler asking for
// the same slot finds it and does not fetch again.
func (e *Enqueuer) Fetch(ctx context.Context, project, slot string, retain time.Duration) (bool, error) {
	t := asynq.NewTask(TypeFetch, mustJSON(FetchPayload{Project: project}))
	return e.enqueue(ctx, t, asynq.Queue(QueueFetch), asynq.TaskID(fetchTaskID(project, slot)),
		asynq.MaxRetry(0), asynq.Timeout(fetchTimeout), asynq.Retention(retain))
}

// Process enqueues the processing of a ledger row.
func (e *Enqueuer) Process(ctx context.Context, inboundID int64) (bool, error) {
	t := asynq.NewTask(TypeProcess, mustJSON(ProcessPayload{InboundID: inboundID}))
	return e.enqueue(ctx, t, asynq.Queue(QueueIngest), asynq.TaskID(processTaskID(inboundID)),
		asynq.MaxRetry(e.opts.Process), asynq.Timeout(5*time.Minute))
}

// Send enqueues the delivery of a notification.
func (e *Enqueuer) Send(ctx context.Context, notificationID int64) (bool, error) {
	t := asynq.NewTask(TypeSend, mustJSON(SendPayload{NotificationID: notificationID}))
	return e.enqueue(ctx, t, asynq.Queue(QueueNotify), asynq.TaskID(sendTaskID(notificationID)),
		asynq.MaxRetry(e.opts.Send), asynq.Timeout(5*time.Minute))
}
