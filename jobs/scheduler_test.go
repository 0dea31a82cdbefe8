package jobs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/servicedesk/servicedesk/config"
)

// testRedis gives the test a flushed Redis database of its own.
func testRedis(t *testing.T, db int) redis.UniversalClient {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: db})
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("redis at 127.0.0.1:6379 (db %d) unreachable: %v", db, err)
	}
	t.Cleanup(func() { rdb.FlushDB(context.Background()); rdb.Close() })
	return rdb
}

type noOutbox struct{}

func (noOutbox) PendingNotifications(context.Context, time.Time, int) ([]int64, error) {
	return nil, nil
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Any number of schedulers may run: for each mailbox and interval slot
// exactly one fetch task exists in Redis.
func TestSchedulersNeverDuplicateAFetch(t *testing.T) {
	rdb := testRedis(t, 2)
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	desks := []Desk{
		{ID: 1, Config: config.Project{Key: "acme", IMAP: config.IMAP{PollInterval: config.Duration(time.Second)}}},
		{ID: 2, Config: config.Project{Key: "globex", IMAP: config.IMAP{PollInterval: config.Duration(time.Second)}}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range 5 {
		s := NewScheduler(NewEnqueuer(client, Retries{}), desks, noOutbox{}, 50*time.Millisecond, OutboxSweep{}, discard())
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Run(ctx) }()
	}
	wg.Wait()
	elapsed := time.Since(start)

	insp := asynq.NewInspectorFromRedisClient(rdb)
	tasks, err := insp.ListPendingTasks(QueueFetch, asynq.PageSize(1000))
	if err != nil {
		t.Fatalf("list pending fetches: %v", err)
	}
	perDesk := map[string]map[string]bool{}
	for _, task := range tasks {
		p, err := decode[FetchPayload](asynq.NewTask(task.Type, task.Payload))
		if err != nil {
			t.Fatal(err)
		}
		if perDesk[p.Project] == nil {
			perDesk[p.Project] = map[string]bool{}
		}
		if perDesk[p.Project][task.ID] {
			t.Fatalf("task %s twice", task.ID)
		}
		perDesk[p.Project][task.ID] = true
	}
	// 5 schedulers ran for 3.5 s: the one-second slots between the start
	// and the deadline (4 or 5) bound the fetches of each desk, not five
	// times as many. Counted from the deadline, not from when the
	// schedulers were done stopping, which a loaded machine delays.
	deadline, _ := ctx.Deadline()
	slots := int(deadline.Unix()-start.Unix()) + 1
	for _, d := range desks {
		n := len(perDesk[d.Config.Key])
		if n < 1 || n > slots {
			t.Errorf("desk %s: %d fetch tasks over %s (%d slots); want one per slot, whatever the number of schedulers: %v",
				d.Config.Key, n, elapsed.Round(time.Millisecond), slots, perDesk[d.Config.Key])
		}
	}
}

// A fetch archived after failing must not block the next slot (asynq keeps
// an archived task's ID forever): slots make every fetch ID new.
func TestFailedFetchDoesNotBlockNextSlot(t *testing.T) {
	rdb := testRedis(t, 3)
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	enq := NewEnqueuer(client, Retries{})
	ctx := context.Background()
	for slot := range 3 {
		ok, err := enq.Fetch(ctx, "acme", fmt.Sprint(slot), time.Second)
		if err != nil || !ok {
			t.Fatalf("slot %d: enqueued=%v err=%v; want a new task", slot, ok, err)
		}
		if err := asynq.NewInspectorFromRedisClient(rdb).ArchiveTask(QueueFetch, fetchTaskID("acme", fmt.Sprint(slot))); err != nil {
			t.Fatalf("archive slot %d: %v", slot, err)
		}
		again, err := enq.Fetch(ctx, "acme", fmt.Sprint(slot), time.Second)
		if err != nil || again {
			t.Fatalf("slot %d again: enqueued=%v err=%v; want a silent no-op", slot, again, err)
		}
	}
}
