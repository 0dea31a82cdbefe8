package config

import (
	"reflect"
	"testing"
)

func TestIsEnvKey(t *testing.T) {
	for name, want := range map[string]bool{
		"SERVICEDESK_REDIS_URL":                            true,
		"SERVICEDESK_REDIS_URL_FILE":                       true,
		"SERVICEDESK_DATABASE_URL_FILE":                    true,
		"SERVICEDESK_HTTP_LISTEN":                          true,
		"SERVICEDESK_HTTP_TOKENS_0_TOKEN_FILE":             true,
		"SERVICEDESK_HTTP_TOKENS_12_ROLE":                  true,
		"SERVICEDESK_MAIL_REPLY_KEY_SECRET_FILE":           true,
		"SERVICEDESK_WORKER_SHUTDOWN_TIMEOUT":              true,
		"SERVICEDESK_LIMITS_MAX_MESSAGE_SIZE":              true,
		"SERVICEDESK_PROJECTS_0_IMAP_PASSWORD_FILE":        true,
		"SERVICEDESK_PROJECTS_1_SMTP_INSECURE_SKIP_VERIFY": true,
		"SERVICEDESK_REDIS_URLS":                           false,
		"SERVICEDESK_REDIS":                                false, // a section, not a scalar
		"SERVICEDESK_HTTP_TOKENS_0":                        false,
		"SERVICEDESK_HTTP_TOKENS_X_TOKEN":                  false,
		"SERVICEDESK_HTTP_TOKENS_00_TOKEN":                 false, // walkEnv names items 0, 1, ...
		"SERVICEDESK_PROJECTS_0_TEMPLATES":                 false, // a map: file only
		"SERVICEDESK_PROJECTS_0_DKIM_DOMAIN":               false, // optional section: file only
		"SERVICEDESK_WORKER_NOTIFY_BACKOFF":                false, // a list of scalars: file only
		"SERVICEDESK_CONFIG":                               false, // the CLI's, not a config key
		"SERVICEDESK_redis_url":                            false,
		"REDIS_URL":                                        false,
	} {
		if got := IsEnvKey(name); got != want {
			t.Errorf("IsEnvKey(%s) = %v, want %v", name, got, want)
		}
	}
}

// TestIsEnvKeyAgreesWithApplyEnv sets every name IsEnvKey accepts, one at a
// time, and checks that applyEnv really sets a field with it.
func TestIsEnvKeyAgreesWithApplyEnv(t *testing.T) {
	var names []string
	var collect func(rt reflect.Type, path string)
	collect = func(rt reflect.Type, path string) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			name := join(path, upper(f.Tag.Get("yaml")))
			switch {
			case f.Type.Kind() == reflect.Struct:
				collect(f.Type, name)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				collect(f.Type.Elem(), join(name, "1"))
			default:
				names = append(names, EnvPrefix+name)
			}
		}
	}
	collect(reflect.TypeOf(Config{}), "")
	checked := 0
	for _, name := range names {
		if !IsEnvKey(name) {
			continue
		}
		checked++
		var c Config
		if err := applyEnv(&c, []string{name + "=" + valueFor(name)}); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if reflect.DeepEqual(c, Config{Projects: c.Projects, HTTP: HTTP{Tokens: c.HTTP.Tokens}}) &&
			reflect.DeepEqual(c.Projects, make([]Project, len(c.Projects))) &&
			reflect.DeepEqual(c.HTTP.Tokens, make([]Token, len(c.HTTP.Tokens))) {
			t.Errorf("%s: accepted by IsEnvKey, but applyEnv set nothing", name)
		}
	}
	if checked < 40 {
		t.Errorf("only %d names checked; the walk is broken", checked)
	}
}

func upper(tag string) string {
	b := []byte(tag)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// valueFor is a value every field of that name decodes.
func valueFor(name string) string {
	switch {
	case hasSuffix(name, "_BATCH_SIZE"):
		return "7"
	case hasSuffix(name, "_SIZE"):
		return "1MB"
	case hasSuffix(name, "_TIMEOUT"), hasSuffix(name, "_INTERVAL"), hasSuffix(name, "_TICK"),
		hasSuffix(name, "_SWEEP"), hasSuffix(name, "_GRACE"), hasSuffix(name, "_TTL"):
		return "2s"
	case hasSuffix(name, "_PORT"), hasSuffix(name, "_CONCURRENCY"), hasSuffix(name, "_RETRIES"),
		hasSuffix(name, "_PER_HOUR"):
		return "7"
	case hasSuffix(name, "_INSECURE_SKIP_VERIFY"), hasSuffix(name, "_IMAP_IDLE"):
		return "true"
	}
	return "x"
}

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}
