package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// FetchAgain remembers that a fetch of a mailbox was asked for while
// another fetch of it ran. The asking fetch cannot run (the lease keeps
// fetches of one mailbox apart) and may come after the running one has
// listed the mailbox: without a mark, mail that arrived in between waits
// for the next poll. With a mark, the running fetch, once it has released
// the mailbox, queues one more. Any number of marks before that are one.
type FetchAgain interface {
	// Mark notes that project's mailbox is wanted again.
	Mark(ctx context.Context, project string) error
	// Take removes the mark and reports whether there was one.
	Take(ctx context.Context, project string) (bool, error)
}

// RedisFetchAgain keeps the marks in Redis, shared by every worker.
type RedisFetchAgain struct {
	rdb redis.UniversalClient
	// TTL is how long an untaken mark lasts (its fetch's holder crashed:
	// the next scheduled fetch takes it). Defaults to 10m.
	TTL time.Duration
}

var _ FetchAgain = (*RedisFetchAgain)(nil)

// NewRedisFetchAgain keeps marks in rdb.
func NewRedisFetchAgain(rdb redis.UniversalClient) *RedisFetchAgain {
	return &RedisFetchAgain{rdb: rdb, TTL: fetchTimeout}
}

func againKey(project string) string { return "servicedesk:fetch-again:{" + project + "}" }

// Mark sets the mark.
func (r *RedisFetchAgain) Mark(ctx context.Context, project string) error {
	if err := r.rdb.Set(ctx, againKey(project), 1, r.TTL).Err(); err != nil {
		return fmt.Errorf("mark %s for another fetch: %w", project, err)
	}
	return nil
}

// Take deletes the mark; DEL says whether it was there, atomically.
func (r *RedisFetchAgain) Take(ctx context.Context, project string) (bool, error) {
	n, err := r.rdb.Del(ctx, againKey(project)).Result()
	if err != nil {
		return false, fmt.Errorf("take the fetch-again mark of %s: %w", project, err)
	}
	return n > 0, nil
}
