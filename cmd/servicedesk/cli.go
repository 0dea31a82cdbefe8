package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/servicedesk/servicedesk/config"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `usage: servicedesk [--config FILE] COMMAND [ARGS]

commands:
  serve [--roles scheduler,worker,web] [--metrics-listen ADDR]
                                         run the given roles (default: all three)
  migrate                                bring the database schema up to date
  check                                  validate config, connect to Redis, DB, every IMAP and SMTP server
  tickets list [--project KEY] [--status open|closed] [--page N] [--per-page N] [--json]
  tickets show KEY#NUMBER [--json]
  tickets reply KEY#NUMBER --text TEXT [--attach FILE]... [--internal] [--author NAME]
  tickets close KEY#NUMBER | tickets reopen KEY#NUMBER
  deadletters list [--json] | retry ID | discard ID
  inbound list [--project KEY] [--outcome O] [--json]
  projects list | projects verify KEY [--timeout 5m]   (verify needs running workers)
  healthcheck [URL] [--timeout 5s]       GET URL (default http://127.0.0.1:8080/readyz), exit 0 on 2xx
  version

--config defaults to $SERVICEDESK_CONFIG, else ./servicedesk.yaml.
`

// cli is one invocation: its streams, environment and parsed config.
type cli struct {
	stdout, stderr io.Writer
	env            []string
	configPath     string
	cfg            *config.Config
	log            *slog.Logger
	tokens         *mailTokens // OAuth2 mailboxes' tokens, once startMailTokens ran
}

// run executes args and returns the exit code. Failures print one line on
// stderr: what failed and why.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr, env: env}
	args, err := c.globalFlags(args)
	if err != nil {
		fmt.Fprintf(stderr, "servicedesk: %s\n", printable(err.Error()))
		return 2
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, rest := args[0], args[1:]
	if cmd == "version" {
		fmt.Fprintln(stdout, versionString())
		return 0
	}
	commands := map[string]func(context.Context, []string) error{
		"serve":       c.serve,
		"migrate":     c.migrate,
		"check":       c.check,
		"tickets":     c.tickets,
		"deadletters": c.deadletters,
		"inbound":     c.inbound,
		"projects":    c.projects,
		"healthcheck": c.healthcheck,
	}
	f, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "servicedesk: unknown command %q (see servicedesk help)\n", printable(cmd))
		return 2
	}
	if cmd != "check" && cmd != "healthcheck" { // check reports a bad config as one of its lines; healthcheck needs none
		if err := c.loadConfig(); err != nil {
			fmt.Fprintf(stderr, "servicedesk: %s\n", printable(oneLine(err)))
			return 1
		}
	}
	if err := f(ctx, rest); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "servicedesk %s: %s\n", cmd, printable(ue.Error()))
			return 2
		}
		if errors.Is(err, errChecksFailed) {
			return 1
		}
		fmt.Fprintf(stderr, "servicedesk %s: %s\n", cmd, printable(oneLine(err)))
		return 1
	}
	return 0
}

type usageError struct{ error }

var errChecksFailed = errors.New("checks failed")

// globalFlags takes --config FILE (anywhere on the line) out of args.
func (c *cli) globalFlags(args []string) ([]string, error) {
	c.configPath = envValue(c.env, "SERVICEDESK_CONFIG")
	if c.configPath == "" {
		c.configPath = "servicedesk.yaml"
	}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--config" || a == "-config" || a == "-c":
			if i+1 >= len(args) {
				return nil, fmt.Errorf("%s needs a file", a)
			}
			c.configPath = args[i+1]
			i++
		case strings.HasPrefix(a, "--config="):
			c.configPath = strings.TrimPrefix(a, "--config=")
		default:
			rest = append(rest, a)
		}
	}
	return rest, nil
}

func (c *cli) loadConfig() error {
	cfg, err := config.Load(c.configPath, c.env)
	if err != nil {
		return err
	}
	c.cfg = cfg
	c.log = newLogger(c.stderr, cfg.Log)
	return nil
}

func newLogger(w io.Writer, lc config.Log) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(lc.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	format := lc.Format
	if format == "" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// oneLine folds a (possibly joined) error onto one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

func versionString() string {
	s := "servicedesk " + version
	if bi, ok := debug.ReadBuildInfo(); ok {
		s += " (" + bi.GoVersion
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" {
				s += ", commit " + kv.Value[:min(12, len(kv.Value))]
			}
		}
		s += ")"
	}
	return s
}

// newFlags makes a subcommand's flag set that reports instead of exiting.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	// Allow flags after positional arguments: "tickets show acme#1 --json".
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return usageError{err}
		}
		args = fs.Args()
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
