package watch

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// lease is one mailbox's watcher lease in Redis: a key holding its owner,
// set with SET NX PX, extended and deleted only by that owner (a script
// compares first), so a watcher that stalls past the TTL cannot extend or
// delete the lease another replica took meanwhile.
type lease struct {
	rdb   redis.UniversalClient
	key   string
	owner string
	ttl   time.Duration
}

var (
	renewScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	// releaseScript deletes the key if it is still ours.
	releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
)

// leaseKey names the lease of project's watcher; the braces keep it in one
// Redis Cluster slot.
func leaseKey(project string) string { return "servicedesk:idle-watch:{" + project + "}" }

// acquire takes the lease if nobody holds it.
func (l lease) acquire(ctx context.Context) (bool, error) {
	ok, err := l.rdb.SetNX(ctx, l.key, l.owner, l.ttl).Result()
	if err != nil {
		return false, fmt.Errorf("acquire watcher lease: %w", err)
	}
	return ok, nil
}

// renew extends the lease; false means it is no longer ours.
func (l lease) renew(ctx context.Context) (bool, error) {
	n, err := renewScript.Run(ctx, l.rdb, []string{l.key}, l.owner, l.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("renew watcher lease: %w", err)
	}
	return n == 1, nil
}

// release deletes the lease if it is still ours.
func (l lease) release(ctx context.Context) error {
	if err := releaseScript.Run(ctx, l.rdb, []string{l.key}, l.owner).Err(); err != nil {
		return fmt.Errorf("release watcher lease: %w", err)
	}
	return nil
}
