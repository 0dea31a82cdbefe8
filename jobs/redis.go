package jobs

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// RedisOpt turns the configured URL into asynq's connection option:
// redis:// and rediss:// (with user name and password, unlike
// asynq.ParseRedisURI which drops the user name), redis-sentinel://
// and redis-cluster://host:port,host:port.
func RedisOpt(raw string) (asynq.RedisConnOpt, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("redis url: %v", redactURLError(err))
	}
	switch u.Scheme {
	case "redis", "rediss":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("redis url: %v", redactURLError(err))
		}
		opt := asynq.RedisClientOpt{Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig}
		if u.Scheme == "rediss" && opt.TLSConfig == nil {
			opt.TLSConfig = &tls.Config{ServerName: u.Hostname()}
		}
		return opt, nil
	case "redis-sentinel":
		return asynq.ParseRedisURI(raw)
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

// redactURLError keeps a password in a malformed URL out of the message.
func redactURLError(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return err.Error()
}
