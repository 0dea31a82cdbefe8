package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/servicedesk/servicedesk/ingest"
	"github.com/servicedesk/servicedesk/notify"
	"github.com/servicedesk/servicedesk/ticket"
)

// Processor turns a ledger row into its outcome (ingest.Processor).
type Processor interface {
	Process(ctx context.Context, inboundID int64) (ticket.Committed, error)
}

// InboundFailer records a message that failed for good.
type InboundFailer interface {
	FailInbound(ctx context.Context, inboundID int64, reason string) error
	Inbound(ctx context.Context, id int64) (ticket.Inbound, error)
}

// ProcessHandler runs process jobs.
type ProcessHandler struct {
	proc    Processor
	store   InboundFailer
	enqueue *Enqueuer
	metrics *Metrics
	log     *slog.Logger
}

// NewProcessHandler wires a process handler.
func NewProcessHandler(p Processor, st InboundFailer, enq *Enqueuer, m *Metrics, logger *slog.Logger) *ProcessHandler {
	return &ProcessHandler{proc: p, store: st, enqueue: enq, metrics: m, log: logger.With("component", "process")}
}

// ProcessTask is the asynq handler of TypeProcess.
func (h *ProcessHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := decode[ProcessPayload](t)
	if err != nil {
		return err
	}
	res, err := h.proc.Process(ctx, p.InboundID)
	if err != nil {
		if !giveUp(err, attempts(ctx), finalAttempt(ctx)) {
			taskLog(ctx, h.log).Warn("process failed, will retry", "inbound", p.InboundID, "err", err)
			return err
		}
		reason := fmt.Sprintf("processing failed after %d attempts: %v", attempts(ctx), err)
		if ferr := h.store.FailInbound(context.WithoutCancel(ctx), p.InboundID, reason); ferr != nil {
			// Not recorded: let asynq retry the whole task rather than lose it.
			return fmt.Errorf("record failed inbound %d: %w (after: %v)", p.InboundID, ferr, err)
		}
		project := ""
		if in, err := h.store.Inbound(ctx, p.InboundID); err == nil {
			project = in.Project
		}
		h.metrics.outcome(project, ticket.OutcomeFailed)
		taskLog(ctx, h.log).Error("message failed for good: dead letter", "inbound", p.InboundID, "err", err)
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	h.metrics.outcome(res.Project, res.Outcome)
	if res.Outcome == ticket.OutcomeTicketCreated || res.Outcome == ticket.OutcomeReplyAdded {
		h.metrics.latency(res.Project, time.Since(res.ReceivedAt))
	}
	for _, id := range res.Notifications {
		if _, err := h.enqueue.Send(ctx, id); err != nil {
			// Committed already: the scheduler's outbox sweep enqueues it later.
			taskLog(ctx, h.log).Warn("enqueue notification; the outbox sweep will retry", "notification", id, "err", err)
		}
	}
	return nil
}

// giveUp reports whether a process error on the given attempt (from 1)
// ends the message as a dead letter rather than a retry: on the final
// attempt, for an error marked SkipRetry, and for a parse past its
// deadline from attempt MaxDeadlineAttempts on. The machine may have been
// busy the first time, but a mail that is slow to parse must not take a
// worker for long again and again.
func giveUp(err error, attempt int, final bool) bool {
	return final || errors.Is(err, asynq.SkipRetry) ||
		(errors.Is(err, ingest.ErrParseDeadline) && attempt >= MaxDeadlineAttempts)
}

// MaxDeadlineAttempts is how many times a message whose parse runs past
// ingest.Limits.Deadline is tried before it becomes a dead letter.
const MaxDeadlineAttempts = 2

func finalAttempt(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	max, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && n >= max
}

func attempts(ctx context.Context) int {
	n, _ := asynq.GetRetryCount(ctx)
	return n + 1
}

// Deliverer sends one notification (notify.Deliverer).
type Deliverer interface {
	Deliver(ctx context.Context, notificationID int64) error
}

// NotificationFailer records a notification that failed for good.
type NotificationFailer interface {
	FailNotification(ctx context.Context, id int64, reason string) error
	Notification(ctx context.Context, id int64) (ticket.Notification, error)
}

// SendHandler runs notify jobs.
type SendHandler struct {
	deliver   Deliverer
	permanent func(error) bool
	store     NotificationFailer
	metrics   *Metrics
	log       *slog.Logger
}

// NewSendHandler wires a send handler; permanent classifies errors
// (notify.Permanent): permanent ones become dead letters at once.
func NewSendHandler(d Deliverer, permanent func(error) bool, st NotificationFailer, m *Metrics, logger *slog.Logger) *SendHandler {
	return &SendHandler{deliver: d, permanent: permanent, store: st, metrics: m, log: logger.With("component", "send")}
}

// ProcessTask is the asynq handler of TypeSend.
func (h *SendHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := decode[SendPayload](t)
	if err != nil {
		return err
	}
	err = h.deliver.Deliver(ctx, p.NotificationID)
	if n, lerr := h.store.Notification(ctx, p.NotificationID); lerr == nil {
		// An authentication failure marks the project's SMTP as broken
		// until a send through it succeeds again.
		switch {
		case err == nil:
			h.metrics.smtpBroken(n.Project, false)
		case errors.Is(err, notify.ErrAuth):
			h.metrics.smtpBroken(n.Project, true)
		}
	}
	if err == nil {
		h.metrics.sent("ok")
		return nil
	}
	perm := h.permanent(err)
	if !perm && !finalAttempt(ctx) {
		h.metrics.sent("temporary")
		taskLog(ctx, h.log).Warn("send failed, will retry", "notification", p.NotificationID, "attempt", attempts(ctx), "err", err)
		return err
	}
	reason := err.Error()
	if !perm {
		reason = fmt.Sprintf("gave up after %d attempts: %v", attempts(ctx), err)
	}
	h.metrics.sent("permanent")
	if ferr := h.store.FailNotification(context.WithoutCancel(ctx), p.NotificationID, reason); ferr != nil {
		return fmt.Errorf("record failed notification %d: %w (after: %v)", p.NotificationID, ferr, err)
	}
	taskLog(ctx, h.log).Error("notification failed for good: dead letter", "notification", p.NotificationID, "err", err)
	return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
}

// taskLog returns l with the ID of the asynq task that ctx runs, so that
// every line a handler logs can be found with its task in the monitor.
// taskIDHandler adds the asynq task ID of the record's context, as taskLog
// does, to what code that knows nothing of asynq (mailsync) logs with a
// context.
type taskIDHandler struct{ slog.Handler }

func (h taskIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := asynq.GetTaskID(ctx); ok {
		r.AddAttrs(slog.String("task_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h taskIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return taskIDHandler{h.Handler.WithAttrs(as)}
}

func (h taskIDHandler) WithGroup(name string) slog.Handler {
	return taskIDHandler{h.Handler.WithGroup(name)}
}

func taskLog(ctx context.Context, l *slog.Logger) *slog.Logger {
	if id, ok := asynq.GetTaskID(ctx); ok {
		return l.With("task_id", id)
	}
	return l
}
