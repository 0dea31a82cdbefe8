package jobs

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/servicedesk/servicedesk/config"
)

// Fetches asked for while a fetch of the same mailbox runs (an IDLE watcher
// reporting mail after the running fetch listed the mailbox) are not lost:
// however many there were, the running fetch queues exactly one more when
// it is done; with none, it queues nothing.
func TestFetchAskedForWhileOneRunsIsFollowedByExactlyOneMore(t *testing.T) {
	// Database 4, keys of a project of this run only: nothing is flushed.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: 4})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("redis at 127.0.0.1:6379 unreachable: %v", err)
	}
	client := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	followUps := func(project string) int {
		tasks, err := insp.ListPendingTasks(QueueFetch, asynq.PageSize(1000))
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Fatalf("list pending fetches: %v", err)
		}
		n := 0
		for _, task := range tasks {
			if strings.HasPrefix(task.ID, "fetch:"+project+":again:") {
				n++
			}
		}
		return n
	}

	for _, tt := range []struct {
		name      string
		busyAsks  int
		followUps int
	}{
		{"three asks while busy: one follow-up", 3, 1},
		{"one ask while busy: one follow-up", 1, 1},
		{"no ask while busy: no follow-up", 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			project := "again-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			entered, release := make(chan struct{}), make(chan struct{})
			errDial := errors.New("dial refused by the test")
			first := true
			dial := func(ctx context.Context, _ config.Project) (Mailbox, error) {
				if first {
					first = false
					entered <- struct{}{}
					<-release
				}
				return nil, errDial
			}
			f := NewFetcher(&leaseStore{}, dial, NewEnqueuer(client, Retries{}), nil, 0, nil, discard())
			f.Again = NewRedisFetchAgain(rdb)
			d := Desk{ID: 1, Config: config.Project{Key: project, IMAP: config.IMAP{PollInterval: config.Duration(time.Minute)}}}
			t.Cleanup(func() {
				rdb.Del(context.Background(), againKey(project))
				tasks, _ := insp.ListPendingTasks(QueueFetch, asynq.PageSize(1000))
				for _, task := range tasks {
					if strings.HasPrefix(task.ID, "fetch:"+project+":") {
						_ = insp.DeleteTask(QueueFetch, task.ID)
					}
				}
			})

			done := make(chan error, 1)
			go func() { _, err := f.Run(t.Context(), d); done <- err }()
			<-entered // the first fetch holds the mailbox
			for i := range tt.busyAsks {
				if more, err := f.Run(t.Context(), d); more != "" || err != nil {
					close(release)
					t.Fatalf("ask %d while busy = (%q, %v); want (\"\", nil)", i, more, err)
				}
			}
			if n := followUps(project); n != 0 {
				close(release)
				t.Fatalf("%d follow-ups queued while the first fetch still runs; want none yet", n)
			}
			close(release)
			if err := <-done; !errors.Is(err, errDial) {
				t.Fatalf("first fetch = %v; want the test's dial error", err)
			}
			if n := followUps(project); n != tt.followUps {
				t.Fatalf("after the first fetch ended: %d follow-up fetches queued; want %d", n, tt.followUps)
			}
		})
	}
}
