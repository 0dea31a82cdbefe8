package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/mailbox"
)

// redisNode is one redis-server of a test's own topology (a master, a
// replica, a Sentinel, a cluster node), on a free loopback port with its
// own directory and config file. It is killed when the test ends; its log
// is shown if the test failed. A node that does not start fails the test:
// the topology is the point of the test, never a reason to skip it.
type redisNode struct {
	t    *testing.T
	name string
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
}

// startRedisNode writes conf (after the port, bind and dir lines) to the
// node's redis.conf and runs `redis-server redis.conf`, with --sentinel for
// a Sentinel (redis-server 7 is Sentinel too: no redis-sentinel package
// needed), and waits up to 10s for PING.
func startRedisNode(t *testing.T, name, conf string, sentinel bool) *redisNode {
	t.Helper()
	_, port := splitHostPort(t, freeAddr(t))
	n := &redisNode{t: t, name: name, port: port, dir: t.TempDir(), log: &syncBuffer{}, done: make(chan struct{})}
	head := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n", port, n.dir)
	if !sentinel {
		head += "save \"\"\nappendonly no\n"
	}
	file := filepath.Join(n.dir, "redis.conf")
	if err := os.WriteFile(file, []byte(head+conf), 0o600); err != nil {
		t.Fatalf("%s: write config: %v", name, err)
	}
	args := []string{file}
	if sentinel {
		args = append(args, "--sentinel")
	}
	n.cmd = exec.Command("redis-server", args...)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("%s: start redis-server (installed by deploy/services.sh): %v", name, err)
	}
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("%s (port %d) log:\n%s", name, port, tail(n.log.String(), 30))
		}
	})
	rdb := n.client()
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := rdb.Ping(context.Background()).Err()
		if err == nil {
			return n
		}
		select {
		case <-n.done:
			t.Fatalf("%s: redis-server exited at start: %v\n%s", name, n.cmd.ProcessState, n.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on port %d did not answer PING within 10s: %v\n%s", name, port, err, n.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *redisNode) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

// client is a plain client of this one node; the caller closes it.
func (n *redisNode) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: n.addr(), DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
}

// kill sends SIGKILL (a crash, not a shutdown) and waits for the exit. Safe
// to call twice.
func (n *redisNode) kill() { sigkill(n.cmd, n.done) }

// info returns the fields of one INFO section of the node.
func (n *redisNode) info(ctx context.Context, section string) (map[string]string, error) {
	rdb := n.client()
	defer rdb.Close()
	s, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = v
		}
	}
	return fields, nil
}

// sentinelTopology is a Redis master, one replica and three Sentinels
// (quorum 2) watching it as "mymaster", as an operator would run them.
type sentinelTopology struct {
	master, replica *redisNode
	sentinels       []*redisNode
}

const sentinelMaster = "mymaster"

// startSentinelTopology starts the master, the replica (waiting until it is
// in sync) and three Sentinels (waiting until each knows the replica and
// the two other Sentinels, so a failover can reach its quorum). A master is
// down after 1s without an answer; a failover may take 5s before another
// Sentinel tries.
func startSentinelTopology(t *testing.T) *sentinelTopology {
	t.Helper()
	ctx := context.Background()
	topo := &sentinelTopology{master: startRedisNode(t, "redis master", "repl-diskless-sync-delay 0\n", false)}
	topo.replica = startRedisNode(t, "redis replica", fmt.Sprintf("replicaof 127.0.0.1 %d\n", topo.master.port), false)
	eventually(t, 20*time.Second, "the replica in sync with the master", func() (bool, string) {
		f, err := topo.replica.info(ctx, "replication")
		if err != nil {
			return false, err.Error()
		}
		return f["master_link_status"] == "up", "master_link_status " + f["master_link_status"]
	})
	conf := fmt.Sprintf(`sentinel monitor %[1]s 127.0.0.1 %[2]d 2
sentinel down-after-milliseconds %[1]s 1000
sentinel failover-timeout %[1]s 5000
sentinel parallel-syncs %[1]s 1
`, sentinelMaster, topo.master.port)
	for i := range 3 {
		topo.sentinels = append(topo.sentinels, startRedisNode(t, fmt.Sprintf("sentinel %d", i+1), conf, true))
	}
	eventually(t, 30*time.Second, "every Sentinel to know the replica and the other Sentinels", func() (bool, string) {
		var state []string
		ready := true
		for i, s := range topo.sentinels {
			rdb := redis.NewSentinelClient(&redis.Options{Addr: s.addr(), DialTimeout: time.Second, ReadTimeout: time.Second})
			replicas, rerr := rdb.Replicas(ctx, sentinelMaster).Result()
			peers, perr := rdb.Sentinels(ctx, sentinelMaster).Result()
			rdb.Close()
			if rerr != nil || perr != nil {
				return false, fmt.Sprintf("sentinel %d: %v %v", i+1, rerr, perr)
			}
			state = append(state, fmt.Sprintf("sentinel %d: %d replica(s), %d peer(s)", i+1, len(replicas), len(peers)))
			ready = ready && len(replicas) == 1 && len(peers) == 2
		}
		return ready, strings.Join(state, "; ")
	})
	return topo
}

// url is the desk's redis.url for the topology.
func (topo *sentinelTopology) url(db int) string {
	addrs := make([]string, len(topo.sentinels))
	for i, s := range topo.sentinels {
		addrs[i] = s.addr()
	}
	return fmt.Sprintf("redis-sentinel://%s/%d?master=%s", strings.Join(addrs, ","), db, sentinelMaster)
}

// masterPort asks the first Sentinel that answers which port the master is
// on now (SENTINEL get-master-addr-by-name).
func (topo *sentinelTopology) masterPort(ctx context.Context) (int, error) {
	var errs []string
	for _, s := range topo.sentinels {
		rdb := redis.NewSentinelClient(&redis.Options{Addr: s.addr(), DialTimeout: time.Second, ReadTimeout: time.Second})
		addr, err := rdb.GetMasterAddrByName(ctx, sentinelMaster).Result()
		rdb.Close()
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if len(addr) != 2 {
			return 0, fmt.Errorf("get-master-addr-by-name answered %v", addr)
		}
		return strconv.Atoi(addr[1])
	}
	return 0, fmt.Errorf("no Sentinel answered: %s", strings.Join(errs, "; "))
}

// statusPoll asks an HTTP endpoint for its status every interval until
// stopped, and keeps every answer with its time (0 for no answer).
type statusPoll struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	got  []statusAt
}

type statusAt struct {
	at     time.Time
	status int
}

// It stops when the test ends, if not before.
func pollStatus(t *testing.T, url string, every time.Duration) *statusPoll {
	p := &statusPoll{stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() { p.end() })
	hc := &http.Client{Timeout: time.Second}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			status := 0
			if resp, err := hc.Get(url); err == nil {
				status = resp.StatusCode
				resp.Body.Close()
			}
			p.mu.Lock()
			p.got = append(p.got, statusAt{time.Now(), status})
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// seen returns the answers so far; there is at least one.
func (p *statusPoll) seen() []statusAt {
	for {
		p.mu.Lock()
		got := slices.Clone(p.got)
		p.mu.Unlock()
		if len(got) > 0 {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// end stops the poll and returns every answer.
func (p *statusPoll) end() []statusAt {
	p.once.Do(func() { close(p.stop) })
	<-p.done
	return p.seen()
}

// appendBacklogAtOnce puts the same n mails as appendBacklog into the desk's
// INBOX over conns IMAP connections at once (Dovecot takes about 12 ms per
// APPEND here), in no particular UID order. It may run in a goroutine of
// its own.
func appendBacklogAtOnce(stack *mailstack.Stack, deskAddr, tag string, n, conns int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	host, portText, err := net.SplitHostPort(stack.IMAPAddr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return err
	}
	senders := []string{"alice", "bob", "carol"}
	errs := make(chan error, conns)
	for w := range conns {
		go func() {
			c, err := mailbox.Dial(ctx, mailbox.Config{Host: host, Port: port, Security: "none", Username: deskAddr, Password: deskPass}, nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := w; i < n; i += conns {
				m := custMail{from: fmt.Sprintf("%s-%s@customer.test", senders[i%len(senders)], tag), to: deskAddr,
					subject: fmt.Sprintf("Backlog %d", i), body: fmt.Sprintf("Message %d of the backlog.", i),
					messageID: fmt.Sprintf("<backlog-%s-%d@customer.test>", tag, i)}
				if _, err := c.Append(ctx, "INBOX", m.raw()); err != nil {
					errs <- fmt.Errorf("append %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range conns {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	if first != nil {
		return fmt.Errorf("append the backlog: %w", first)
	}
	return nil
}

// startRedisCluster starts n cluster-enabled redis-servers and joins them
// with `redis-cli --cluster create` into a cluster of n masters and no
// replicas, then waits until every node says cluster_state:ok.
func startRedisCluster(t *testing.T, n int) []*redisNode {
	t.Helper()
	ctx := context.Background()
	var nodes []*redisNode
	var addrs []string
	for i := range n {
		node := startRedisNode(t, fmt.Sprintf("cluster node %d", i+1),
			"cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 2000\n", false)
		nodes = append(nodes, node)
		addrs = append(addrs, node.addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(cctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	eventually(t, 20*time.Second, "cluster_state:ok on every node", func() (bool, string) {
		for _, node := range nodes {
			f, err := node.info(ctx, "cluster")
			if err != nil {
				return false, err.Error()
			}
			rdb := node.client()
			state, err := rdb.ClusterInfo(ctx).Result()
			rdb.Close()
			if err != nil {
				return false, err.Error()
			}
			if f["cluster_enabled"] != "1" || !strings.Contains(state, "cluster_state:ok") {
				return false, fmt.Sprintf("%s: %s", node.name, strings.Fields(state)[0])
			}
		}
		return true, ""
	})
	return nodes
}
