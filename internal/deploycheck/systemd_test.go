package deploycheck

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitFile is a systemd unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, rel string) unitFile {
	u := unitFile{}
	section := ""
	for _, line := range strings.Split(read(t, rel), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: bad line %q", rel, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unitFile) one(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestSystemdUnits checks the units for every role: the command and role,
// the dedicated user, the state directory, secrets handed over as
// credentials and named by SERVICEDESK_*_FILE variables that are config
// keys, a stop timeout longer than worker.shutdown_timeout, restart on
// failure and the hardening; then systemd-analyze verify (when installed)
// must accept them without a warning.
func TestSystemdUnits(t *testing.T) {
	units := map[string]string{
		"servicedesk-scheduler.service": "scheduler",
		"servicedesk-worker@.service":   "worker",
		"servicedesk-web.service":       "web",
	}
	sysusers := read(t, "deploy/systemd/servicedesk.sysusers.conf")
	target := parseUnit(t, "deploy/systemd/servicedesk.target")
	wants := strings.Fields(target.one("Unit", "Wants"))
	for file, role := range units {
		rel := "deploy/systemd/" + file
		u := parseUnit(t, rel)
		s := u["Service"]
		want := func(key, value string) {
			t.Helper()
			if got := u.one("Service", key); got != value {
				t.Errorf("%s: %s=%q, want %q", file, key, got, value)
			}
		}
		want("ExecStart", "/usr/local/bin/servicedesk serve --roles "+role)
		want("User", "servicedesk")
		want("Restart", "on-failure")
		want("StateDirectory", "servicedesk")
		want("WorkingDirectory", "/var/lib/servicedesk")
		want("NoNewPrivileges", "yes")
		want("ProtectSystem", "strict")
		want("ProtectHome", "yes")
		want("PrivateTmp", "yes")
		want("CapabilityBoundingSet", "")
		want("EnvironmentFile", "-/etc/servicedesk/servicedesk.env")
		if got := mustDuration(t, u.one("Service", "TimeoutStopSec")); got <= mustDuration(t, "30s") {
			t.Errorf("%s: TimeoutStopSec %v: want longer than worker.shutdown_timeout (30s)", file, got)
		}
		if !strings.Contains(sysusers, "u servicedesk ") {
			t.Errorf("servicedesk.sysusers.conf does not create the user servicedesk")
		}
		if u.one("Install", "WantedBy") != "servicedesk.target" || u.one("Unit", "PartOf") != "servicedesk.target" {
			t.Errorf("%s: want WantedBy= and PartOf=servicedesk.target", file)
		}
		instance := strings.Replace(file, "@.", "@1.", 1)
		found := false
		for _, w := range wants {
			found = found || w == instance
		}
		if !found {
			t.Errorf("servicedesk.target does not want %s", instance)
		}

		creds := map[string]bool{}
		for _, lc := range s["LoadCredential"] {
			name, path, _ := strings.Cut(lc, ":")
			if path != "/etc/servicedesk/credentials/"+name {
				t.Errorf("%s: LoadCredential=%s: want /etc/servicedesk/credentials/%s", file, lc, name)
			}
			creds[name] = true
		}
		env := map[string]string{}
		for _, e := range s["Environment"] {
			k, v, _ := strings.Cut(e, "=")
			env[k] = v
		}
		if env["SERVICEDESK_CONFIG"] != "/etc/servicedesk/servicedesk.yaml" {
			t.Errorf("%s: want Environment=SERVICEDESK_CONFIG=/etc/servicedesk/servicedesk.yaml", file)
		}
		checkEnv(t, file, env)
		used := map[string]bool{}
		for k, v := range env {
			if !strings.HasSuffix(k, "_FILE") {
				continue
			}
			name, ok := strings.CutPrefix(v, "%d/")
			if !ok || !creds[name] {
				t.Errorf("%s: %s=%s: want %%d/NAME of a LoadCredential=", file, k, v)
			}
			used[name] = true
		}
		for c := range creds {
			if !used[c] {
				t.Errorf("%s: credential %s is loaded but no SERVICEDESK_*_FILE names it", file, c)
			}
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: units checked by the parser only")
		return
	}
	// verify checks that ExecStart= exists: point it at the binary
	// deploy/build.sh makes.
	bin := builtBinary(t)
	dir := t.TempDir()
	var args []string
	for _, name := range []string{"servicedesk-scheduler.service", "servicedesk-worker@.service", "servicedesk-web.service", "servicedesk.target"} {
		b := strings.ReplaceAll(read(t, "deploy/systemd/"+name), "/usr/local/bin/servicedesk", bin)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, filepath.Join(dir, strings.Replace(name, "@.", "@1.", 1)))
	}
	var out bytes.Buffer
	cmd := exec.Command(analyze, append([]string{"verify"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
	// verify exits 0 on an unknown key or a bad value, with a warning:
	// any output at all fails.
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out.String())
	}
}
