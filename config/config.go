// Package config loads and validates the servicedesk configuration: one YAML
// file, overridden per scalar by SERVICEDESK_* environment variables, with
// secrets optionally read from files (NAME_file) for container secrets.
//
// It is loaded once at start; every field documents its unit and default.
// YAML decoding uses gopkg.in/yaml.v3 (strict: an unknown key is an error,
// so a typo never silently falls back to a default).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration.
type Config struct {
	Redis     Redis     `yaml:"redis"`
	Database  Database  `yaml:"database"`
	HTTP      HTTP      `yaml:"http"`
	Limits    Limits    `yaml:"limits"`
	Mail      Mail      `yaml:"mail"`
	Scheduler Scheduler `yaml:"scheduler"`
	Worker    Worker    `yaml:"worker"`
	Log       Log       `yaml:"log"`
	Projects  []Project `yaml:"projects"`
}

// Redis is where asynq keeps its queues.
type Redis struct {
	// URL is redis://[user:pass@]host:port/db, rediss://, or
	// redis-sentinel://[:pass@]host:port[,host:port]/db?master=NAME, or
	// redis-cluster://host:port,host:port. Defaults to redis://127.0.0.1:6379/0.
	URL     string `yaml:"url"`
	URLFile string `yaml:"url_file"`
}

// Database is the ticket store.
type Database struct {
	// URL is sqlite://PATH or postgres://user:pass@host:port/db?sslmode=....
	// Defaults to sqlite://./servicedesk.db.
	URL     string `yaml:"url"`
	URLFile string `yaml:"url_file"`
}

// HTTP is the API, health, metrics and monitor listener.
type HTTP struct {
	// Listen is host:port. Defaults to 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// PublicURL is the base of links put in emails. Optional.
	PublicURL string `yaml:"public_url"`
	// MetricsListen is host:port where a process without the web role
	// serves /healthz, /readyz and /metrics (its own counters: fetches,
	// outcomes, sends), for probes and scraping in a split deployment.
	// Empty (the default): such a process listens nowhere. serve's
	// --metrics-listen overrides it per process.
	MetricsListen string  `yaml:"metrics_listen"`
	Tokens        []Token `yaml:"tokens"`
}

// Token is a bearer token for the API and the monitor.
type Token struct {
	Name string `yaml:"name"`
	// Token is the secret itself, at least MinTokenLength characters
	// (e.g. openssl rand -hex 16).
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// SHA256 is the hex sha256 of the token, instead of the token itself.
	SHA256 string `yaml:"sha256"`
	// Role is admin, agent or guest.
	Role string `yaml:"role"`
}

// Limits bound what mail may cost.
type Limits struct {
	// MaxMessageSize is the largest inbound message downloaded; larger mail
	// is refused, recorded as a dead letter and left in the mailbox.
	// Defaults to 25MB.
	MaxMessageSize Size `yaml:"max_message_size"`
	// MaxAttachmentsSize is the largest total of native outbound attachments;
	// above it, links are sent instead. Defaults to 10MB.
	MaxAttachmentsSize Size `yaml:"max_attachments_size"`
	// AutomaticMailPerHour is the most automatic mails (thank-you, closed,
	// reopened, new_participant; never an agent's note) one project sends
	// in any hour, to all recipients together; the rest is suppressed with
	// its reason and counted in servicedesk_notifications_suppressed_total.
	// Defaults to 1000.
	AutomaticMailPerHour int `yaml:"automatic_mail_per_hour"`
}

// Mail holds settings shared by every project's mail.
type Mail struct {
	// ReplyKeySecret signs reply keys (at least 16 characters). Required.
	// Changing it invalidates the reply addresses of mail already sent
	// (replies still thread by Message-ID).
	ReplyKeySecret     string `yaml:"reply_key_secret"`
	ReplyKeySecretFile string `yaml:"reply_key_secret_file"`
}

// Scheduler tunes the scheduler role.
type Scheduler struct {
	// Tick is how often each scheduler looks for due mailboxes. Defaults to 1s.
	Tick Duration `yaml:"tick"`
	// OutboxSweep is how often a scheduler queues again the notifications
	// whose send task was lost (a crash between commit and enqueue, a Redis
	// failover that lost writes the replica had not received). Defaults to
	// 30s.
	OutboxSweep Duration `yaml:"outbox_sweep"`
	// OutboxGrace is how long a notification stays pending before the
	// sweep takes its task for lost. Defaults to 1m.
	OutboxGrace Duration `yaml:"outbox_grace"`
}

// Worker tunes the worker role.
type Worker struct {
	// Concurrency is how many ingest jobs (fetch, process) run at once in one
	// process. Defaults to 32: a process job mostly waits for the database,
	// and the raw bytes being processed at once are capped at 8 x
	// limits.max_message_size whatever this is.
	Concurrency int `yaml:"concurrency"`
	// NotifyConcurrency is how many outbound mails are sent at once in one
	// process, on their own queue so a slow SMTP server never delays
	// ingestion. Defaults to 4.
	NotifyConcurrency int `yaml:"notify_concurrency"`
	// ShutdownTimeout is how long SIGTERM waits for in-flight jobs.
	// Defaults to 30s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// ProcessRetries is how often a message that fails to process is retried
	// before it becomes a dead letter. Defaults to 8.
	ProcessRetries int `yaml:"process_retries"`
	// NotifyBackoff is the retry ladder of a temporarily failing send; its
	// last step repeats. Defaults to 30s, 1m, 2m, 5m, 10m, 20m, 30m, 1h, 2h,
	// 4h, 8h, 12h.
	NotifyBackoff []Duration `yaml:"notify_backoff"`
	// NotifyRetries is how often a temporarily failing send is retried
	// before it becomes a dead letter. Defaults to 12 (about two days).
	NotifyRetries int `yaml:"notify_retries"`
}

// Log sets up logging.
type Log struct {
	// Level is debug, info, warn or error. Defaults to info.
	Level string `yaml:"level"`
	// Format is json or text. Defaults to json unless stderr is a terminal.
	Format string `yaml:"format"`
}

// Project is one desk.
type Project struct {
	// Key is [a-z0-9-]+, used in API paths and ticket refs (acme#12).
	Key  string `yaml:"key"`
	Name string `yaml:"name"`
	// Address is the desk address customers write to; From of outbound mail.
	Address string `yaml:"address"`
	IMAP    IMAP   `yaml:"imap"`
	SMTP    SMTP   `yaml:"smtp"`
	// Templates override the default mails, by kind: thank_you, note,
	// new_participant, closed, reopened. Placeholders in GitLab's style:
	// %{TICKET_REF}, %{TICKET_ID}, %{TICKET_URL}, %{TICKET_DESCRIPTION},
	// %{NOTE_TEXT}, %{PROJECT_NAME}, %{UNSUBSCRIBE_URL}.
	Templates map[string]Template `yaml:"templates"`
	// DKIM signs the project's outbound mail when set. Optional.
	DKIM *DKIM `yaml:"dkim"`
}

// Template is one kind of outbound mail. HTML empty derives the HTML part
// from the text.
type Template struct {
	Text     string `yaml:"text"`
	TextFile string `yaml:"text_file"`
	HTML     string `yaml:"html"`
	HTMLFile string `yaml:"html_file"`
}

// DKIM is a project's signing key.
type DKIM struct {
	Domain         string `yaml:"domain"`
	Selector       string `yaml:"selector"`
	PrivateKey     string `yaml:"private_key"` // PEM
	PrivateKeyFile string `yaml:"private_key_file"`
}

// TemplateKinds are the kinds of mail a template may be given for.
func TemplateKinds() []string {
	return []string{"thank_you", "note", "new_participant", "closed", "reopened"}
}

// IMAP is a project's mailbox.
type IMAP struct {
	Host string `yaml:"host"`
	// Port defaults to 993 for tls, 143 otherwise.
	Port int `yaml:"port"`
	// Security is tls (default), starttls or none.
	Security     string `yaml:"security"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// Folder defaults to INBOX.
	Folder string `yaml:"folder"`
	// PollInterval is how often the mailbox is fetched. Defaults to 30s; at least 1s.
	PollInterval Duration `yaml:"poll_interval"`
	// AfterProcessing is seen (default), move or delete; applied only after
	// the message's outcome is committed.
	AfterProcessing string `yaml:"after_processing"`
	// ProcessedFolder is where move puts processed mail. Defaults to Processed.
	ProcessedFolder string `yaml:"processed_folder"`
	// BatchSize is how many messages a fetch run lists, downloads and
	// records at a time; a run drains a bigger backlog batch after batch
	// on the same connection. Defaults to 100.
	BatchSize int `yaml:"batch_size"`
	// InsecureSkipVerify accepts any TLS certificate (test servers only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// SMTP is a project's outbound server.
type SMTP struct {
	Host string `yaml:"host"`
	// Port defaults to 465 for tls, 587 for starttls, 25 for none.
	Port int `yaml:"port"`
	// Security is starttls (default), tls or none.
	Security string `yaml:"security"`
	// Username empty means no authentication.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// InsecureSkipVerify accepts any TLS certificate (test servers only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// EnvPrefix starts every environment override.
const EnvPrefix = "SERVICEDESK_"

// MinTokenLength is the fewest characters an http.tokens token may have:
// a bearer token is a password that anyone who can reach the listener may
// guess at.
const MinTokenLength = 20

// Load reads the file at path, applies environment overrides and secret
// files, fills defaults and validates. env is usually os.Environ().
func Load(path string, env []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, env)
}

// Parse is Load for config bytes already read.
func Parse(data []byte, env []string) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // an empty file is fine: env and defaults
		return nil, fmt.Errorf("parse config: %s", withoutValues(strings.TrimPrefix(err.Error(), "yaml: ")))
	}
	if err := applyEnv(&c, env); err != nil {
		return nil, err
	}
	if err := c.readSecretFiles(); err != nil {
		return nil, err
	}
	c.withDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) readSecretFiles() error {
	read := func(field string, dst *string, file string) error {
		if file == "" {
			return nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("%s_file: %w", field, err)
		}
		*dst = strings.TrimRight(string(b), "\r\n")
		return nil
	}
	if err := read("redis.url", &c.Redis.URL, c.Redis.URLFile); err != nil {
		return err
	}
	if err := read("database.url", &c.Database.URL, c.Database.URLFile); err != nil {
		return err
	}
	if err := read("mail.reply_key_secret", &c.Mail.ReplyKeySecret, c.Mail.ReplyKeySecretFile); err != nil {
		return err
	}
	for i := range c.HTTP.Tokens {
		t := &c.HTTP.Tokens[i]
		if err := read(fmt.Sprintf("http.tokens[%d].token", i), &t.Token, t.TokenFile); err != nil {
			return err
		}
	}
	for i := range c.Projects {
		p := &c.Projects[i]
		if err := read(fmt.Sprintf("projects[%d].imap.password", i), &p.IMAP.Password, p.IMAP.PasswordFile); err != nil {
			return err
		}
		if err := read(fmt.Sprintf("projects[%d].smtp.password", i), &p.SMTP.Password, p.SMTP.PasswordFile); err != nil {
			return err
		}
		for kind, t := range p.Templates {
			if err := read(fmt.Sprintf("projects[%d].templates.%s.text", i, kind), &t.Text, t.TextFile); err != nil {
				return err
			}
			if err := read(fmt.Sprintf("projects[%d].templates.%s.html", i, kind), &t.HTML, t.HTMLFile); err != nil {
				return err
			}
			p.Templates[kind] = t
		}
		if p.DKIM != nil {
			if err := read(fmt.Sprintf("projects[%d].dkim.private_key", i), &p.DKIM.PrivateKey, p.DKIM.PrivateKeyFile); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Config) withDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	def(&c.Redis.URL, "redis://127.0.0.1:6379/0")
	def(&c.Database.URL, "sqlite://./servicedesk.db")
	def(&c.HTTP.Listen, "127.0.0.1:8080")
	c.HTTP.PublicURL = strings.TrimRight(c.HTTP.PublicURL, "/")
	if c.Limits.MaxMessageSize == 0 {
		c.Limits.MaxMessageSize = 25 << 20
	}
	if c.Limits.MaxAttachmentsSize == 0 {
		c.Limits.MaxAttachmentsSize = 10 << 20
	}
	if c.Scheduler.Tick == 0 {
		c.Scheduler.Tick = Duration(time.Second)
	}
	if c.Scheduler.OutboxSweep == 0 {
		c.Scheduler.OutboxSweep = Duration(30 * time.Second)
	}
	if c.Scheduler.OutboxGrace == 0 {
		c.Scheduler.OutboxGrace = Duration(time.Minute)
	}
	defInt(&c.Limits.AutomaticMailPerHour, 1000)
	defInt(&c.Worker.Concurrency, 32)
	defInt(&c.Worker.NotifyConcurrency, 4)
	defInt(&c.Worker.ProcessRetries, 8)
	defInt(&c.Worker.NotifyRetries, 12)
	if c.Worker.ShutdownTimeout == 0 {
		c.Worker.ShutdownTimeout = Duration(30 * time.Second)
	}
	def(&c.Log.Level, "info")
	for i := range c.Projects {
		p := &c.Projects[i]
		p.Key = strings.TrimSpace(p.Key)
		def(&p.Name, p.Key)
		p.Address = strings.ToLower(strings.TrimSpace(p.Address))
		def(&p.IMAP.Security, "tls")
		def(&p.IMAP.Folder, "INBOX")
		def(&p.IMAP.AfterProcessing, "seen")
		def(&p.IMAP.ProcessedFolder, "Processed")
		def(&p.IMAP.Username, p.Address)
		defInt(&p.IMAP.BatchSize, 100)
		if p.IMAP.PollInterval == 0 {
			p.IMAP.PollInterval = Duration(30 * time.Second)
		}
		if p.IMAP.Port == 0 {
			p.IMAP.Port = map[string]int{"tls": 993}[p.IMAP.Security]
			defInt(&p.IMAP.Port, 143)
		}
		def(&p.SMTP.Security, "starttls")
		if p.SMTP.Port == 0 {
			p.SMTP.Port = map[string]int{"tls": 465, "starttls": 587, "none": 25}[p.SMTP.Security]
		}
	}
}

var keyPattern = regexp.MustCompile(`^[a-z0-9-]+$`)

// Validate reports the first problem, naming the field and what is wanted.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.Limits.AutomaticMailPerHour < 0 {
		bad("limits.automatic_mail_per_hour: must be a positive number of mails (default 1000)")
	}
	if len(c.Mail.ReplyKeySecret) < 16 {
		bad("mail.reply_key_secret: must be set, at least 16 characters (it signs reply addresses; e.g. `openssl rand -hex 32`)")
	}
	// Each scheme says whether the rest must parse as a URL (a SQLite
	// path need not).
	if err := checkURL("database.url", c.Database.URL, "sqlite://… or postgres://…",
		map[string]bool{"sqlite": false, "sqlite3": false, "postgres": true, "postgresql": true}); err != nil {
		errs = append(errs, err)
	}
	if err := checkURL("redis.url", c.Redis.URL, "redis://…, rediss://…, redis-sentinel://… or redis-cluster://…",
		map[string]bool{"redis": true, "rediss": true, "redis-sentinel": true, "redis-cluster": true}); err != nil {
		errs = append(errs, err)
	}
	for i, t := range c.HTTP.Tokens {
		switch {
		case t.Token == "" && t.SHA256 == "":
			bad("http.tokens[%d] (%s): token, token_file or sha256 is required", i, t.Name)
		case t.SHA256 != "" && !regexp.MustCompile(`^[0-9a-fA-F]{64}$`).MatchString(t.SHA256):
			bad("http.tokens[%d] (%s): sha256 must be 64 hex digits", i, t.Name)
		case t.Token != "" && utf8.RuneCountInString(t.Token) < MinTokenLength:
			// The length is said, never the token.
			bad("http.tokens[%d] (%s): token is %d characters; use at least %d (e.g. openssl rand -hex 16)",
				i, t.Name, utf8.RuneCountInString(t.Token), MinTokenLength)
		}
		switch t.Role {
		case "admin", "agent", "guest":
		default:
			bad("http.tokens[%d] (%s): role %q: want admin, agent or guest", i, t.Name, t.Role)
		}
	}
	if len(c.Projects) == 0 {
		bad("projects: at least one project is required")
	}
	keys, addrs := map[string]bool{}, map[string]bool{}
	for i, p := range c.Projects {
		at := fmt.Sprintf("projects[%d] (%s)", i, p.Key)
		if !keyPattern.MatchString(p.Key) {
			bad("projects[%d].key %q: want [a-z0-9-]+", i, p.Key)
		}
		if keys[p.Key] {
			bad("%s: key used twice", at)
		}
		keys[p.Key] = true
		if a, err := mail.ParseAddress(p.Address); err != nil || a.Address != p.Address {
			bad("%s.address %q: want a bare address like support@example.com", at, p.Address)
		}
		if addrs[p.Address] {
			bad("%s.address %q: used by two projects", at, p.Address)
		}
		addrs[p.Address] = true
		if p.IMAP.Host == "" {
			bad("%s.imap.host: required", at)
		}
		if !oneOf(p.IMAP.Security, "tls", "starttls", "none") {
			bad("%s.imap.security %q: want tls, starttls or none", at, p.IMAP.Security)
		}
		if p.IMAP.Password == "" {
			bad("%s.imap.password: required (or password_file)", at)
		}
		if time.Duration(p.IMAP.PollInterval) < time.Second {
			bad("%s.imap.poll_interval %s: at least 1s", at, p.IMAP.PollInterval)
		}
		if !oneOf(p.IMAP.AfterProcessing, "seen", "move", "delete") {
			bad("%s.imap.after_processing %q: want seen, move or delete", at, p.IMAP.AfterProcessing)
		}
		if p.IMAP.BatchSize < 1 {
			bad("%s.imap.batch_size %d: at least 1", at, p.IMAP.BatchSize)
		}
		if p.SMTP.Host == "" {
			bad("%s.smtp.host: required", at)
		}
		if !oneOf(p.SMTP.Security, "tls", "starttls", "none") {
			bad("%s.smtp.security %q: want tls, starttls or none", at, p.SMTP.Security)
		}
		if p.SMTP.Username != "" && p.SMTP.Password == "" {
			bad("%s.smtp.password: required with a username (or password_file)", at)
		}
		for kind, t := range p.Templates {
			if !oneOf(kind, TemplateKinds()...) {
				bad("%s.templates.%s: unknown kind; want one of %s", at, kind, strings.Join(TemplateKinds(), ", "))
			}
			if strings.TrimSpace(t.Text) == "" {
				bad("%s.templates.%s.text: required (or text_file)", at, kind)
			}
		}
		if p.DKIM != nil && (p.DKIM.Domain == "" || p.DKIM.Selector == "" || p.DKIM.PrivateKey == "") {
			bad("%s.dkim: domain, selector and private_key (or private_key_file) are required", at)
		}
		if p.IMAP.Port <= 0 || p.IMAP.Port > 65535 || p.SMTP.Port <= 0 || p.SMTP.Port > 65535 {
			bad("%s: port out of range", at)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid config: %w", errors.Join(errs...))
}

// schemePattern is RFC 3986's scheme: anything else before "://" is not a
// scheme but part of something else (a libpq "key=value" string), and
// is not echoed.
var schemePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]{0,31}$`)

// checkURL says what is wrong with the URL in field, naming the field and
// the problem but never the value: a URL may carry a user, a password or
// a secret query parameter. Only a scheme is ever echoed.
func checkURL(field, raw, want string, schemes map[string]bool) error {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok || !schemePattern.MatchString(scheme) {
		return fmt.Errorf("%s: not a URL (want %s)", field, want)
	}
	mustParse, known := schemes[strings.ToLower(scheme)]
	if !known {
		return fmt.Errorf("%s: unsupported scheme %q (want %s)", field, scheme, want)
	}
	if mustParse {
		if _, err := url.Parse(raw); err != nil {
			return fmt.Errorf("%s: not a valid URL: %s", field, URLProblem(err))
		}
	}
	return nil
}

// quotedValue is a value quoted in an error message of net/url ("x");
// yamlValue one that yaml.v3 echoes (`x`).
var (
	quotedValue = regexp.MustCompile(`\s*"[^"]*"`)
	yamlValue   = regexp.MustCompile("\\s*`[^`]*`")
)

// URLProblem describes why url.Parse refused a URL without echoing any
// part of it. A *url.Error holds the whole URL, and even its inner error
// quotes a fragment (`invalid port ":pw" after host` when the password
// holds a slash), so quoted values are dropped.
func URLProblem(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var esc url.EscapeError
	if errors.As(err, &esc) {
		return "invalid %-escape"
	}
	var host url.InvalidHostError
	if errors.As(err, &host) {
		return "invalid character in host name"
	}
	return quotedValue.ReplaceAllString(err.Error(), "")
}

// withoutValues drops the values yaml.v3 echoes from its error message,
// keeping what is wrong and where: it quotes up to ten characters of a
// value it cannot decode, which may be the start of a password.
func withoutValues(msg string) string {
	return yamlValue.ReplaceAllString(msg, "")
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}

// Project returns the project with key, if any.
func (c *Config) Project(key string) (Project, bool) {
	for _, p := range c.Projects {
		if p.Key == key {
			return p, true
		}
	}
	return Project{}, false
}

// applyEnv sets every scalar that has an environment override: the prefix
// plus the upper-cased YAML path joined by "_", list items by index
// (SERVICEDESK_PROJECTS_0_IMAP_PASSWORD). Items are only overridden, never
// created, except that a list grows to the highest index named.
func applyEnv(c *Config, env []string) error {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			vars[strings.TrimPrefix(k, EnvPrefix)] = v
		}
	}
	if len(vars) == 0 {
		return nil
	}
	return walkEnv(reflect.ValueOf(c).Elem(), "", vars)
}

func walkEnv(v reflect.Value, path string, vars map[string]string) error {
	switch v.Kind() {
	case reflect.Struct:
		if _, ok := v.Addr().Interface().(interface{ UnmarshalYAML(*yaml.Node) error }); ok {
			break
		}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			if err := walkEnv(v.Field(i), join(path, strings.ToUpper(name)), vars); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Struct {
			break
		}
		maxIdx := v.Len() - 1
		prefix := path + "_"
		for k := range vars {
			if rest, ok := strings.CutPrefix(k, prefix); ok {
				idx, _, _ := strings.Cut(rest, "_")
				if n, err := strconv.Atoi(idx); err == nil && n > maxIdx && n < 1000 {
					maxIdx = n
				}
			}
		}
		for v.Len() <= maxIdx {
			v.Set(reflect.Append(v, reflect.New(v.Type().Elem()).Elem()))
		}
		for i := 0; i < v.Len(); i++ {
			if err := walkEnv(v.Index(i), join(path, strconv.Itoa(i)), vars); err != nil {
				return err
			}
		}
		return nil
	}
	s, ok := vars[path]
	if !ok {
		return nil
	}
	node := &yaml.Node{Kind: yaml.ScalarNode, Value: s}
	if err := node.Decode(v.Addr().Interface()); err != nil {
		return fmt.Errorf("%s%s: %s", EnvPrefix, path, withoutValues(err.Error()))
	}
	return nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "_" + name
}

// IsEnvKey reports whether name (SERVICEDESK_REDIS_URL,
// SERVICEDESK_PROJECTS_0_IMAP_PASSWORD_FILE) is an environment override that
// Load applies: the prefix, then the upper-cased path of a scalar joined by
// "_", list items of structs by index. Lists of scalars, maps (templates)
// and optional sections (dkim) are set in the file only. Deployment files
// check every variable they set with it, so a misspelt one fails a test
// instead of being ignored at run time.
func IsEnvKey(name string) bool {
	rest, ok := strings.CutPrefix(name, EnvPrefix)
	return ok && envPathOf(reflect.TypeOf(Config{}), rest)
}

// envPathOf mirrors walkEnv on types: path names a scalar inside t.
func envPathOf(t reflect.Type, path string) bool {
	switch t.Kind() {
	case reflect.Struct:
		if reflect.PointerTo(t).Implements(reflect.TypeOf((*interface{ UnmarshalYAML(*yaml.Node) error })(nil)).Elem()) {
			return false // walkEnv stops at a struct that decodes itself
		}
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			name = strings.ToUpper(name)
			ft := t.Field(i).Type
			if path == name && isEnvScalar(ft) {
				return true
			}
			if rest, ok := strings.CutPrefix(path, name+"_"); ok && envPathOf(ft, rest) {
				return true
			}
		}
		return false
	case reflect.Slice:
		if t.Elem().Kind() != reflect.Struct {
			return false
		}
		idx, rest, ok := strings.Cut(path, "_")
		n, err := strconv.Atoi(idx)
		return ok && err == nil && n >= 0 && n < 1000 && strconv.Itoa(n) == idx && envPathOf(t.Elem(), rest)
	}
	return false
}

// isEnvScalar: a field walkEnv decodes from one string.
func isEnvScalar(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return true
	}
	return false
}
