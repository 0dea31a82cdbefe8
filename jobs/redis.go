package jobs

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/servicedesk/servicedesk/config"
)

// RedisOpt turns the configured URL into asynq's connection option:
// redis:// and rediss:// (with user name and password, unlike
// asynq.ParseRedisURI which drops the user name), redis-sentinel://
// and redis-cluster://host:port,host:port. Its errors never hold a part of
// the URL but its scheme.
func RedisOpt(raw string) (asynq.RedisConnOpt, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("redis url: %s", config.URLProblem(err))
	}
	switch u.Scheme {
	case "redis", "rediss":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("redis url: %s", redactURLError(err, u))
		}
		opt := asynq.RedisClientOpt{Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig}
		if u.Scheme == "rediss" && opt.TLSConfig == nil {
			opt.TLSConfig = &tls.Config{ServerName: u.Hostname()}
		}
		return opt, nil
	case "redis-sentinel":
		opt, err := asynq.ParseRedisURI(raw)
		if err != nil {
			return nil, fmt.Errorf("redis url: %s", redactURLError(err, u))
		}
		return opt, nil
	case "redis-cluster":
		pw, _ := u.User.Password()
		return asynq.RedisClusterClientOpt{Addrs: strings.Split(u.Host, ","), Username: u.User.Username(), Password: pw}, nil
	default:
		return nil, fmt.Errorf("redis url: scheme %q: want redis, rediss, redis-sentinel or redis-cluster", u.Scheme)
	}
}

// RedisClient makes the one shared client every asynq part uses.
func RedisClient(opt asynq.RedisConnOpt) redis.UniversalClient {
	return opt.MakeRedisClient().(redis.UniversalClient)
}

// redactURLError is what a parser said of the URL u with its parts taken
// out: go-redis names the path, a query option or its value. (Parts of one
// character are left: they would garble the message and say nothing.)
func redactURLError(err error, u *url.URL) string {
	msg := config.URLProblem(err)
	pw, _ := u.User.Password()
	parts := []string{u.User.String(), pw, u.User.Username(), u.Host, u.Path, u.RawQuery, u.Fragment}
	for _, vs := range u.Query() {
		parts = append(parts, vs...)
	}
	// Longest first, so that a part inside another goes with it.
	slices.SortFunc(parts, func(a, b string) int { return len(b) - len(a) })
	for _, part := range parts {
		if len(part) > 1 {
			msg = strings.ReplaceAll(msg, part, "…")
		}
	}
	return msg
}
