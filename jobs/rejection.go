package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/servicedesk/servicedesk/ingest"
	"github.com/servicedesk/servicedesk/ticket"
)

// TypeReject answers the sender of a mail rejected for its size.
const TypeReject = "notify:reject"

// RejectPayload names a rejected row of the inbound ledger.
type RejectPayload struct {
	InboundID int64 `json:"inbound_id"`
}

func rejectTaskID(inboundID int64) string { return fmt.Sprintf("reject:%d", inboundID) }

// Reject enqueues the answer to rejected row inboundID, claimed already
// (store.ClaimRejectionAnswer); its task ID makes a second enqueue a no-op.
func (e *Enqueuer) Reject(ctx context.Context, inboundID int64) (bool, error) {
	t := asynq.NewTask(TypeReject, mustJSON(RejectPayload{InboundID: inboundID}))
	return e.enqueue(ctx, t, asynq.Queue(QueueNotify), asynq.TaskID(rejectTaskID(inboundID)),
		asynq.MaxRetry(e.opts.Send), asynq.Timeout(5*time.Minute))
}

// RejectionStore finds rejected mail to answer and claims each row once.
type RejectionStore interface {
	RejectionsToAnswer(ctx context.Context, limit int) ([]ticket.Inbound, error)
	ClaimRejectionAnswer(ctx context.Context, id int64, mailID string) (bool, error)
	SettleRejectionAnswer(ctx context.Context, id int64, state, reason string) error
	QueuedRejectionAnswers(ctx context.Context, before time.Time, limit int) ([]int64, error)
}

// AnswerRejections has the scheduler answer the senders of mail rejected
// for its size, on the outbox sweep's schedule (sweepRejections).
func (s *Scheduler) AnswerRejections(st RejectionStore) { s.rejections = st }

// sweepRejections decides, for each rejected row whose sender is known and
// not yet answered, whether it gets an answer: never when its envelope
// looks automatic (ingest.EnvelopeAutomatic: the body was never read, so
// the classifier cannot run), which is settled as suppressed with the
// reason; otherwise the row is claimed (a conditional UPDATE: of many
// schedulers one wins) and its answer enqueued. Answers claimed longer
// than the sweep's grace ago and never settled are enqueued again.
func (s *Scheduler) sweepRejections(ctx context.Context, now time.Time) {
	if s.rejections == nil {
		return
	}
	rows, err := s.rejections.RejectionsToAnswer(ctx, 100)
	if err != nil {
		s.log.Warn("rejection sweep", "err", err)
		return
	}
	for _, in := range rows {
		if why := ingest.EnvelopeAutomatic(in.From, in.Subject); why != "" {
			if err := s.rejections.SettleRejectionAnswer(ctx, in.ID, ticket.DeliverySuppressed, "not answered: "+why); err != nil {
				s.log.Warn("rejection sweep: settle", "inbound", in.ID, "err", err)
			}
			continue
		}
		mailID, err := s.rejectionMailID(in)
		if err != nil {
			s.log.Warn("rejection sweep", "inbound", in.ID, "err", err)
			return
		}
		claimed, err := s.rejections.ClaimRejectionAnswer(ctx, in.ID, mailID)
		if err != nil {
			s.log.Warn("rejection sweep: claim", "inbound", in.ID, "err", err)
			return
		}
		if !claimed {
			continue // another scheduler has it
		}
		if _, err := s.enqueue.Reject(ctx, in.ID); err != nil {
			// Claimed: the next sweeps enqueue it once the grace is over.
			s.log.Warn("rejection sweep: enqueue", "inbound", in.ID, "err", err)
			return
		}
	}
	ids, err := s.rejections.QueuedRejectionAnswers(ctx, now.Add(-s.sweep.After), 500)
	if err != nil {
		s.log.Warn("rejection sweep", "err", err)
		return
	}
	for _, id := range ids {
		if _, err := s.enqueue.Reject(ctx, id); err != nil {
			s.log.Warn("rejection sweep enqueue", "inbound", id, "err", err)
			return
		}
	}
}

// rejectionMailID is the Message-ID of the answer to in, fixed at its
// claim so that a retry is recognisably the same mail.
func (s *Scheduler) rejectionMailID(in ticket.Inbound) (string, error) {
	domain := "localhost"
	for _, d := range s.desks {
		if d.ID == in.ProjectID {
			if _, dom, ok := strings.Cut(d.Config.Address, "@"); ok {
				domain = dom
			}
		}
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return "<sd-reject." + strconv.FormatInt(in.ID, 10) + "." + hex.EncodeToString(b) + "@" + domain + ">", nil
}

// Rejecter sends the answer to one rejected row (notify.Rejecter).
type Rejecter interface {
	Deliver(ctx context.Context, inboundID int64) error
}

// RejectSettler records an answer that failed for good.
type RejectSettler interface {
	SettleRejectionAnswer(ctx context.Context, id int64, state, reason string) error
}

// RejectHandler runs the answers to rejected mail.
type RejectHandler struct {
	reject    Rejecter
	permanent func(error) bool
	store     RejectSettler
	log       *slog.Logger
}

// NewRejectHandler wires a reject handler; permanent classifies errors
// (notify.Permanent).
func NewRejectHandler(r Rejecter, permanent func(error) bool, st RejectSettler, logger *slog.Logger) *RejectHandler {
	return &RejectHandler{reject: r, permanent: permanent, store: st, log: logger.With("component", "reject")}
}

// ProcessTask is the asynq handler of TypeReject. An answer that fails for
// good is settled as failed, with the reason, on its ledger row; the
// rejected mail has its dead letter already.
func (h *RejectHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := decode[RejectPayload](t)
	if err != nil {
		return err
	}
	err = h.reject.Deliver(ctx, p.InboundID)
	if err == nil {
		return nil
	}
	perm := h.permanent(err)
	if !perm && !finalAttempt(ctx) {
		taskLog(ctx, h.log).Warn("answer to rejected mail failed, will retry", "inbound", p.InboundID, "err", err)
		return err
	}
	reason := err.Error()
	if !perm {
		reason = fmt.Sprintf("gave up after %d attempts: %v", attempts(ctx), err)
	}
	if serr := h.store.SettleRejectionAnswer(context.WithoutCancel(ctx), p.InboundID, ticket.DeliveryFailed, reason); serr != nil {
		return fmt.Errorf("record failed answer to inbound %d: %w (after: %v)", p.InboundID, serr, err)
	}
	taskLog(ctx, h.log).Error("answer to rejected mail failed for good", "inbound", p.InboundID, "err", err)
	return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
}

// HandleRejections has the notify server run the answers to rejected mail.
func (w *Worker) HandleRejections(h *RejectHandler) { w.notifyMux.Handle(TypeReject, h) }
