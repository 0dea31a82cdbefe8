package deploycheck

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// servicedeskRoles are the services run from the image, by their role.
var servicedeskRoles = map[string]string{"scheduler": "scheduler", "worker": "worker", "web": "web"}

// composeSecrets runs deploy/compose/secrets.sh on a copy of its directory
// and returns the files it wrote, by name.
func composeSecrets(t *testing.T) map[string]string {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(filepath.Join(root, "deploy/compose/secrets.sh"), filepath.Join(dir, "secrets.sh"))
	examples, _ := filepath.Glob(filepath.Join(root, "deploy/compose/secrets/*.example"))
	for _, e := range examples {
		copyFile(e, filepath.Join(dir, "secrets", filepath.Base(e)))
	}
	for run := 0; run < 2; run++ { // a second run keeps what the first wrote
		out, err := exec.Command("sh", filepath.Join(dir, "secrets.sh")).CombinedOutput()
		if err != nil {
			t.Fatalf("secrets.sh: %v\n%s", err, out)
		}
		if run == 1 && len(out) > 0 {
			t.Errorf("secrets.sh run again rewrote files: %s", out)
		}
	}
	files := map[string]string{}
	entries, _ := os.ReadDir(filepath.Join(dir, "secrets"))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".example") {
			continue
		}
		info, _ := e.Info()
		if info.Mode().Perm() != 0o644 {
			t.Errorf("secrets.sh wrote %s %v: the container user 65532 must be able to read it", e.Name(), info.Mode().Perm())
		}
		b, _ := os.ReadFile(filepath.Join(dir, "secrets", e.Name()))
		files[e.Name()] = string(b)
	}
	return files
}

func loadCompose(t *testing.T) *types.Project {
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnv([]string{}), // interpolation defaults, whatever this machine's environment holds
		cli.WithProfiles([]string{"dev"}),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("compose-go cannot load docker-compose.yml: %v", err)
	}
	return p
}

// TestCompose loads docker-compose.yml with compose-go (interpolation,
// profiles, paths resolved against the project directory) and checks the
// services and their roles, health checks, start order, secrets, and that
// the config it mounts loads with the environment and secret files it sets.
func TestCompose(t *testing.T) {
	p := loadCompose(t)
	secretFiles := composeSecrets(t)

	var names []string
	for n := range p.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"mail", "postgres", "redis", "scheduler", "web", "worker"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	if mail := p.Services["mail"]; !slices.Equal(mail.Profiles, []string{"dev"}) {
		t.Errorf("mail: profiles %v, want [dev] (development only)", mail.Profiles)
	}
	for _, n := range []string{"redis", "postgres", "scheduler", "worker", "web"} {
		if len(p.Services[n].Profiles) != 0 {
			t.Errorf("%s: profiles %v: it must run without a profile", n, p.Services[n].Profiles)
		}
	}
	hc := func(name string) []string {
		s := p.Services[name]
		if s.HealthCheck == nil || s.HealthCheck.Disable {
			return nil
		}
		return s.HealthCheck.Test
	}
	if got := hc("postgres"); len(got) < 2 || got[1] != "pg_isready" {
		t.Errorf("postgres healthcheck %q: want pg_isready", got)
	}
	if got := hc("redis"); len(got) < 2 || got[1] != "redis-cli" {
		t.Errorf("redis healthcheck %q: want redis-cli ping", got)
	}
	if pg := p.Services["postgres"]; !slices.ContainsFunc(pg.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == "volume" && v.Target == "/var/lib/postgresql/data" && p.Volumes[v.Source].Name != ""
	}) {
		t.Errorf("postgres: want a named volume on /var/lib/postgresql/data, have %+v", pg.Volumes)
	}

	pgPassword := strings.TrimSpace(secretFiles["postgres_password"])
	pgEnv := p.Services["postgres"].Environment
	if v := pgEnv["POSTGRES_PASSWORD_FILE"]; v == nil || *v != "/run/secrets/postgres_password" {
		t.Errorf("postgres: want POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password")
	}

	for name, role := range servicedeskRoles {
		s := p.Services[name]
		where := "docker-compose.yml " + name
		if s.Build == nil || s.Build.Context != root || s.Build.Dockerfile != "Dockerfile" {
			t.Errorf("%s: want build from the top-level Dockerfile, have %+v", where, s.Build)
		}
		want := []string{"serve", "--roles", role}
		if role != "web" {
			want = append(want, "--metrics-listen", "0.0.0.0:9090")
		}
		if !slices.Equal(s.Command, want) {
			t.Errorf("%s: command %q, want %q", where, s.Command, want)
		}
		for _, dep := range []string{"redis", "postgres"} {
			if d, ok := s.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: want depends_on %s: service_healthy, have %+v", where, dep, d)
			}
		}
		if !s.ReadOnly {
			t.Errorf("%s: want read_only: true", where)
		}
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= 30*time.Second {
			t.Errorf("%s: stop_grace_period %v: want longer than worker.shutdown_timeout (30s)", where, s.StopGracePeriod)
		}

		// Every role has a health check on /readyz: web on its listener,
		// the others on --metrics-listen.
		port := "9090"
		if role == "web" {
			port = "8080"
		}
		if test := hc(name); len(test) != 4 || test[0] != "CMD" || test[1] != "servicedesk" || test[2] != "healthcheck" {
			t.Errorf("%s: healthcheck %q: want [CMD servicedesk healthcheck URL]", where, test)
		} else if u, err := url.Parse(test[3]); err != nil || u.Path != "/readyz" || u.Port() != port {
			t.Errorf("%s: healthcheck URL %s: want /readyz on %s", where, test[3], port)
		}
		if role == "web" && (len(s.Ports) != 1 || s.Ports[0].Target != 8080) {
			t.Errorf("%s: ports %+v: want 8080 published", where, s.Ports)
		}
		if role == "worker" && (s.Deploy == nil || s.Deploy.Replicas == nil || *s.Deploy.Replicas != 2) {
			t.Errorf("%s: want deploy.replicas: 2", where)
		}

		// The config file mount.
		var cfgSource string
		for _, v := range s.Volumes {
			if v.Target == "/etc/servicedesk/servicedesk.yaml" && v.ReadOnly {
				cfgSource = v.Source
			}
		}
		if cfgSource != filepath.Join(root, "deploy/compose/servicedesk.yaml") {
			t.Fatalf("%s: want deploy/compose/servicedesk.yaml mounted read-only at /etc/servicedesk/servicedesk.yaml, have %q", where, cfgSource)
		}

		// Environment and secrets: every variable a config key, every
		// _FILE one a secret of this service with a file source that
		// secrets.sh writes.
		env := map[string]string{}
		for k, v := range s.Environment {
			if v == nil {
				t.Errorf("%s: %s has no value", where, k)
				continue
			}
			env[k] = *v
		}
		checkEnv(t, where, env)
		files := map[string]string{}
		for _, sec := range s.Secrets {
			top, ok := p.Secrets[sec.Source]
			if !ok || top.File == "" {
				t.Errorf("%s: secret %s: want a top-level secret with a file", where, sec.Source)
				continue
			}
			if filepath.Dir(top.File) != filepath.Join(root, "deploy/compose/secrets") {
				t.Errorf("secret %s: file %s: want it under deploy/compose/secrets/", sec.Source, top.File)
			}
			content, ok := secretFiles[filepath.Base(top.File)]
			if !ok {
				t.Errorf("secret %s: deploy/compose/secrets.sh does not write %s", sec.Source, filepath.Base(top.File))
			}
			target := sec.Target
			if target == "" {
				target = sec.Source
			}
			if !strings.HasPrefix(target, "/") {
				target = "/run/secrets/" + target
			}
			files[target] = content
		}
		used := map[string]bool{}
		for k, v := range env {
			if strings.HasSuffix(k, "_FILE") {
				if _, ok := files[v]; !ok {
					t.Errorf("%s: %s=%s is not one of its secrets", where, k, v)
				}
				used[v] = true
			}
		}
		for f := range files {
			if !used[f] {
				t.Errorf("%s: secret %s is mounted but no SERVICEDESK_*_FILE names it", where, f)
			}
		}

		cfg := parseConfig(t, where, read(t, "deploy/compose/servicedesk.yaml"), merge(imageEnv, env), files)
		if !strings.HasPrefix(cfg.Database.URL, "postgres://servicedesk:"+pgPassword+"@postgres:5432/servicedesk") {
			t.Errorf("%s: database.url does not reach the postgres service with its password", where)
		}
		if cfg.Redis.URL != "redis://redis:6379/0" {
			t.Errorf("%s: redis.url %q: want the redis service", where, cfg.Redis.URL)
		}
		if cfg.HTTP.Listen != "0.0.0.0:8080" {
			t.Errorf("%s: http.listen %q: want 0.0.0.0:8080", where, cfg.HTTP.Listen)
		}
		if time.Duration(*s.StopGracePeriod) <= cfg.Worker.ShutdownTimeout.D() {
			t.Errorf("%s: stop_grace_period %v is not longer than worker.shutdown_timeout %v", where, *s.StopGracePeriod, cfg.Worker.ShutdownTimeout)
		}
		if pr := cfg.Projects[0]; pr.IMAP.Host != "mail" || pr.SMTP.Host != "mail" {
			t.Errorf("%s: the example project must read the dev mail service", where)
		}
	}
}
