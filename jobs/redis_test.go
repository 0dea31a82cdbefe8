package jobs

import (
	"strings"
	"testing"
)

// TestRedisOptNeverEchoesTheURL: every way RedisOpt refuses a URL that
// carries the password hunter2 says what is wrong without any of it.
func TestRedisOptNeverEchoesTheURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url, want string
	}{
		{"bad port", "redis://:hunter2@host:bad", "redis url: invalid port after host"},
		{"password with a slash", "redis://u:hun/ter2@host", "redis url: invalid port after host"},
		{"bad escape", "redis://:hunter2%zz@host", "redis url: invalid %-escape"},
		{"bad database number", "redis://:hunter2@host/hunter2", "redis url: redis: invalid database number"},
		{"bad path", "redis://:hunter2@host/0/hunter2", "redis url: redis: invalid URL path"},
		{"bad option value", "redis://:hunter2@host/0?dial_timeout=hunter2", "redis url: redis: invalid dial_timeout duration"},
		{"unknown option", "redis://:hunter2@host/0?hunter2=1", "redis url: redis: unexpected option"},
		{"unknown scheme", "memcached://:hunter2@host", `redis url: scheme "memcached"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := RedisOpt(tt.url)
			if err == nil {
				t.Fatal("RedisOpt accepted the URL")
			}
			t.Logf("error: %v", err)
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "ter2") {
				t.Errorf("RedisOpt error %q holds the password", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("RedisOpt error %q; want it to say %q", err, tt.want)
			}
		})
	}
}
