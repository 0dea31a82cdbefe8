package deploycheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/config"
)

// root is the repository's top directory.
var root = func() string {
	r, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	return r
}()

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The binary as deploy/build.sh builds it, once per test run.
var (
	buildOnce sync.Once
	binary    string
	buildErr  error
	buildOut  []byte
	buildDir  string
)

const testVersion = "v0.0.0-deploycheck"

func builtBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "deploycheck-")
		if buildErr != nil {
			return
		}
		binary = filepath.Join(buildDir, "servicedesk")
		cmd := exec.Command("sh", filepath.Join(root, "deploy/build.sh"), binary, testVersion)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1") // build.sh must turn cgo off itself
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("sh deploy/build.sh: %v\n%s", buildErr, buildOut)
	}
	return binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// checkEnv fails for every SERVICEDESK_* variable that is not a config key
// (SERVICEDESK_CONFIG is the CLI's: the config file's path).
func checkEnv(t *testing.T, where string, env map[string]string) {
	t.Helper()
	for k := range env {
		if !strings.HasPrefix(k, config.EnvPrefix) || k == "SERVICEDESK_CONFIG" {
			continue
		}
		if !config.IsEnvKey(k) {
			t.Errorf("%s: %s is not a config key (config.IsEnvKey)", where, k)
		}
	}
}

// parseConfig loads a config file the way the binary does, with env, after
// rewriting every secret path (a key of files) to a file holding its value.
func parseConfig(t *testing.T, where, yaml string, env map[string]string, files map[string]string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	var list []string
	for k, v := range env {
		if content, ok := files[v]; ok {
			p := filepath.Join(dir, strings.ReplaceAll(strings.Trim(v, "/"), "/", "_"))
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			v = p
		} else if strings.HasSuffix(k, "_FILE") {
			t.Errorf("%s: %s=%s names no secret file", where, k, v)
		}
		list = append(list, k+"="+v)
	}
	cfg, err := config.Parse([]byte(yaml), list)
	if err != nil {
		t.Fatalf("%s: the config does not load: %v", where, err)
	}
	return cfg
}

// imageEnv is the environment the Dockerfile sets (checked there).
var imageEnv = map[string]string{
	"SERVICEDESK_CONFIG":      "/etc/servicedesk/servicedesk.yaml",
	"SERVICEDESK_HTTP_LISTEN": "0.0.0.0:8080",
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
