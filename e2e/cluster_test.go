package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/jobs"
)

// TestRedisCluster runs our three kinds of task through jobs.Enqueuer and an
// asynq server on a Redis Cluster of three masters (redis-cluster://): each
// is processed once, and enqueuing the same task ID again is refused, as on
// a single Redis. asynq keeps every key of a queue under one hash tag
// (asynq:{fetch}:..., asynq:{ingest}:..., asynq:{notify}:...), so its Lua
// scripts never cross slots; our task IDs hold no braces, so they never
// make a hash tag of their own.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nodes := startRedisCluster(t, 3)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.addr())
	}
	opt, err := jobs.RedisOpt("redis-cluster://" + strings.Join(addrs, ","))
	if err != nil {
		t.Fatalf("RedisOpt: %v", err)
	}
	rdb := jobs.RedisClient(opt)
	t.Cleanup(func() { rdb.Close() })
	client := asynq.NewClientFromRedisClient(rdb)
	enq := jobs.NewEnqueuer(client, jobs.Retries{})

	type enqueue struct {
		name string
		do   func() (bool, error)
	}
	enqueues := []enqueue{
		{"fetch:acme:1", func() (bool, error) { return enq.Fetch(ctx, "acme", "1", time.Minute) }},
		{"process:42", func() (bool, error) { return enq.Process(ctx, 42) }},
		{"send:7", func() (bool, error) { return enq.Send(ctx, 7) }},
	}
	for _, e := range enqueues {
		if ok, err := e.do(); !ok || err != nil {
			t.Fatalf("enqueue %s: queued %v, %v; want queued", e.name, ok, err)
		}
		if ok, err := e.do(); ok || err != nil {
			t.Errorf("enqueue %s again: queued %v, %v; want refused as a duplicate, no error", e.name, ok, err)
		}
	}

	// The queues' keys live on different nodes: the cluster is really used.
	owners := map[string]string{}
	for _, q := range []string{jobs.QueueFetch, jobs.QueueIngest, jobs.QueueNotify} {
		slot := redisClusterSlot("asynq:{" + q + "}:pending")
		for _, n := range nodes {
			c := n.client()
			keys, err := c.ClusterCountKeysInSlot(ctx, int(slot)).Result()
			c.Close()
			if err == nil && keys > 0 {
				owners[q] = n.name
			}
		}
	}
	t.Logf("queues by node: %v", owners)

	var mu sync.Mutex
	handled := map[string]int{}
	var logged []string
	record := func(_ context.Context, task *asynq.Task) error {
		mu.Lock()
		defer mu.Unlock()
		handled[task.Type()+" "+string(task.Payload())]++
		return nil
	}
	mux := asynq.NewServeMux()
	for _, typ := range []string{jobs.TypeFetch, jobs.TypeProcess, jobs.TypeSend} {
		mux.HandleFunc(typ, record)
	}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: 4, Queues: map[string]int{jobs.QueueFetch: 1, jobs.QueueIngest: 1, jobs.QueueNotify: 1},
		TaskCheckInterval: 100 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		Logger: collectLogger(func(s string) { mu.Lock(); logged = append(logged, s); mu.Unlock() }),
	})
	if err := srv.Start(mux); err != nil {
		t.Fatalf("start asynq server on the cluster: %v", err)
	}
	eventually(t, 15*time.Second, "the three tasks handled", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == 3, fmt.Sprint(handled)
	})
	// The heartbeat (a script on the server's own hash tag plus two
	// sorted sets) works: the inspector sees the server.
	insp := asynq.NewInspectorFromRedisClient(rdb)
	eventually(t, 10*time.Second, "the inspector to see the server", func() (bool, string) {
		servers, err := insp.Servers()
		return err == nil && len(servers) == 1, fmt.Sprintf("%d servers, %v", len(servers), err)
	})
	srv.Shutdown()

	mu.Lock()
	for task, n := range handled {
		if n != 1 {
			t.Errorf("%s handled %d times; want once", task, n)
		}
	}
	for _, l := range logged {
		t.Errorf("asynq logged on the cluster: %s", l)
	}
	mu.Unlock()
	if ok, err := enq.Fetch(ctx, "acme", "1", time.Minute); ok || err != nil {
		t.Errorf("enqueue fetch:acme:1 after it ran: queued %v, %v; want refused (the task is retained)", ok, err)
	}

	// What serve's metrics and monitor read: the Inspector.
	queues, err := insp.Queues()
	if err != nil {
		t.Fatalf("inspector queues: %v", err)
	}
	for _, q := range queues {
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			t.Errorf("inspector queue %s: %v", q, err)
			continue
		}
		if info.Processed != 1 {
			t.Errorf("inspector: queue %s processed %d; want 1", q, info.Processed)
		}
	}
	if len(queues) != 3 {
		t.Errorf("inspector queues %v; want fetch, ingest and notify", queues)
	}

	t.Run("serve", func(t *testing.T) {
		// The whole binary on the cluster: scheduler, worker and web
		// (readyz, metrics from the inspector) ingest a small backlog
		// exactly once.
		const mails = 30
		stack := mailstack.Start(t)
		deskAddr := "cluster@example.test"
		stack.AddUser(t, deskAddr, deskPass)
		for _, s := range []string{"alice", "bob", "carol"} {
			stack.AddUser(t, s+"-cluster@customer.test", "pw")
		}
		appendBacklog(t, stack, deskAddr, "cluster", mails)
		env := newDesk(t, stack, backends[0], envOptions{desk: deskAddr, redisURL: "redis-cluster://" + strings.Join(addrs, ",")})
		env.serve("--roles", "scheduler,worker,web")
		env.serve("--roles", "scheduler,worker")
		assertExactlyOnce(t, env, mails, 60*time.Second)
		hc := &http.Client{Timeout: 5 * time.Second}
		for _, path := range []string{"/readyz", "/metrics"} {
			// One answer may be slow on a loaded machine; a broken one
			// stays broken for the whole wait.
			eventually(t, 20*time.Second, "GET "+path+" 200", func() (bool, string) {
				resp, err := hc.Get("http://" + env.httpAddr + path)
				if err != nil {
					return false, err.Error()
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return false, fmt.Sprintf("%d %s", resp.StatusCode, body)
				}
				if path == "/metrics" && !strings.Contains(string(body), `queue="ingest"`) {
					return false, "no queue depth of ingest from the inspector:\n" + tail(string(body), 20)
				}
				return true, ""
			})
		}
	})
}

// redisClusterSlot is the hash slot of key (CRC16 of its hash tag).
func redisClusterSlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for _, b := range []byte(key) {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

// collectLogger is an asynq.Logger that hands every warning and error to
// fn (asynq logs at info and above by default; info is dropped).
type collectLogger func(string)

func (l collectLogger) Debug(...any)      {}
func (l collectLogger) Info(...any)       {}
func (l collectLogger) Warn(args ...any)  { l("warn: " + fmt.Sprint(args...)) }
func (l collectLogger) Error(args ...any) { l("error: " + fmt.Sprint(args...)) }
func (l collectLogger) Fatal(args ...any) { l("fatal: " + fmt.Sprint(args...)) }

var _ asynq.Logger = collectLogger(nil)
