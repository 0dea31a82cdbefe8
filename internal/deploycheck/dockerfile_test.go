package deploycheck

import (
	"bytes"
	"debug/elf"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct{ cmd, args string }

func dockerfile(t *testing.T) []instruction {
	var out []instruction
	var cur string
	for _, line := range strings.Split(read(t, "Dockerfile"), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		cur += trimmed
		cmd, args, _ := strings.Cut(cur, " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur = ""
	}
	return out
}

// TestDockerfile checks the image: the build stage runs deploy/build.sh
// (the recipe TestBuildRecipe runs) with the Go of go.mod, the final stage
// is distroless static as user 65532 with servicedesk as entrypoint, the
// config path, a listener on every address, port 8080 and the state volume.
func TestDockerfile(t *testing.T) {
	ins := dockerfile(t)
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(read(t, "go.mod"))[1]
	var froms []string
	var final []instruction // the instructions of the last stage
	for _, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, in.args)
			final = nil
			continue
		}
		final = append(final, in)
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			t.Errorf("RUN %s: build through deploy/build.sh only, the recipe the tests run", in.args)
		}
	}
	want := func(ok bool, format string, args ...any) {
		t.Helper()
		if !ok {
			t.Errorf(format, args...)
		}
	}
	has := func(list []instruction, cmd, args string) bool {
		for _, in := range list {
			if in.cmd == cmd && in.args == args {
				return true
			}
		}
		return false
	}
	want(has(ins, "ARG", "GO_VERSION="+goVersion), "want ARG GO_VERSION=%s (go.mod's go line)", goVersion)
	want(len(froms) == 2 && froms[0] == "golang:${GO_VERSION} AS build", "stages %q: want golang:${GO_VERSION} AS build, then the image", froms)
	want(len(froms) == 2 && regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?:nonroot$`).MatchString(froms[len(froms)-1]),
		"final stage %q: want gcr.io/distroless/static:nonroot", froms[len(froms)-1])
	want(has(ins, "RUN", `sh deploy/build.sh /out/servicedesk "$VERSION" && mkdir -p /out/var/lib/servicedesk`), "the build stage must run sh deploy/build.sh")
	want(has(ins, "ENV", "GOFLAGS=-trimpath"), "the build stage must set GOFLAGS=-trimpath: no build paths in the image")
	want(has(final, "COPY", "--from=build /out/servicedesk /usr/local/bin/servicedesk"), "the binary must be /usr/local/bin/servicedesk")
	want(has(final, "USER", "65532:65532"), "want USER 65532:65532 (distroless nonroot)")
	want(has(final, "ENTRYPOINT", `["servicedesk"]`), `want ENTRYPOINT ["servicedesk"]`)
	want(has(final, "CMD", `["serve"]`), `want CMD ["serve"]`)
	want(has(final, "EXPOSE", "8080"), "want EXPOSE 8080")
	want(has(final, "VOLUME", `["/var/lib/servicedesk"]`), "want VOLUME /var/lib/servicedesk")
	want(has(final, "WORKDIR", "/var/lib/servicedesk"), "want WORKDIR /var/lib/servicedesk: the default SQLite file lands on the volume")
	want(has(final, "COPY", "--from=build --chown=65532:65532 /out/var/lib/servicedesk /var/lib/servicedesk"), "the state directory must belong to 65532")

	env := map[string]string{}
	for _, in := range final {
		if in.cmd == "ENV" {
			for _, kv := range strings.Fields(in.args) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		}
	}
	for k, v := range imageEnv {
		want(env[k] == v, "want ENV %s=%s, have %q", k, v, env[k])
	}
	want(len(env) == len(imageEnv), "ENV %v: imageEnv in helpers_test.go must list every variable", env)
	checkEnv(t, "Dockerfile", env)
	want(env["SERVICEDESK_DATABASE_URL"] == "", "the image must not set SERVICEDESK_DATABASE_URL: it would beat database.url in the config file")

	ignore := strings.Fields(read(t, ".dockerignore"))
	for _, p := range []string{".git", ".run", "deploy/compose/secrets/*", "**/*.db"} {
		want(strings.Contains(" "+strings.Join(ignore, " ")+" ", " "+p+" "), ".dockerignore: want %s", p)
	}
	for _, p := range ignore {
		for _, needed := range []string{"go.mod", "go.sum", "deploy", "deploy/build.sh", "cmd", "*.go", "**/*.go"} {
			want(p != needed, ".dockerignore: %s is needed by the build", p)
		}
	}
}

// TestBuildRecipe runs deploy/build.sh, the Dockerfile's build stage, and
// checks what it makes: a static, stripped executable that reports the
// version given and has the health probe the compose file uses. (The
// image's build stage adds GOFLAGS=-trimpath; TestDockerfile checks that.)
func TestBuildRecipe(t *testing.T) {
	bin := builtBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (%v): cgo must be off", p.Type)
		}
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: want -ldflags -s")
	}

	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "servicedesk "+testVersion+" ") {
		t.Errorf("servicedesk version: %q, %v; want the version build.sh was given", out, err)
	}
	var stderr bytes.Buffer
	probe := exec.Command(bin, "healthcheck", "--timeout", "2s", "http://127.0.0.1:1/readyz")
	probe.Env = []string{"SERVICEDESK_CONFIG=/nonexistent.yaml"}
	probe.Stderr = &stderr
	if err := probe.Run(); err == nil || probe.ProcessState.ExitCode() != 1 || !strings.Contains(stderr.String(), "127.0.0.1:1") {
		t.Errorf("healthcheck of a closed port: %v, stderr %q; want exit 1 saying why", err, stderr.String())
	}
	if out, err := exec.Command("sh", root+"/deploy/build.sh", t.TempDir()+"/x", "v1 ; rm").CombinedOutput(); err == nil {
		t.Errorf("build.sh took a version with a space and a semicolon: %s", out)
	}
}
