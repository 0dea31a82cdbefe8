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
	// Intake is one mailbox serving many desks (GitLab's incoming
	// address). Optional.
	Intake   Intake    `yaml:"intake"`
	Projects []Project `yaml:"projects"`
}

// Intake is the mailbox of many desks: mail to incoming+<project key>@ its
// domain, and mail that a desk's address or alias forwards to it, is
// routed to that desk. Unset (no address): every desk has its own mailbox.
type Intake struct {
	// Address is the intake address, e.g. incoming@example.com. Setting
	// it turns the intake on.
	Address string `yaml:"address"`
	// IMAP is the intake mailbox, with the keys (and defaults) of a
	// project's imap; username defaults to the address.
	IMAP IMAP `yaml:"imap"`
	// Graph reads the intake mailbox through Microsoft Graph instead of
	// IMAP, with the keys of a project's graph.
	Graph Graph `yaml:"graph"`
}

// Enabled reports whether an intake mailbox is configured.
func (in Intake) Enabled() bool { return in.Address != "" }

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

	// LinkSecret signs the links customers get by mail (the ticket's page,
	// attachments, unsubscribe; at least 16 characters). Defaults to a
	// secret derived from mail.reply_key_secret under a label of its own.
	// Changing it invalidates the links of mail already sent.
	LinkSecret     string `yaml:"link_secret"`
	LinkSecretFile string `yaml:"link_secret_file"`
	// LinkTTL is how long a link to a ticket's page (and its attachments)
	// stays valid. Defaults to 30 days (720h). Unsubscribe links never
	// expire.
	LinkTTL Duration `yaml:"link_ttl"`
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
	// TokenKey encrypts (AES-256-GCM) the OAuth2 refresh tokens stored in
	// the database, at least MinTokenKeyLength characters. Required when
	// a mailbox uses auth: xoauth2 with a refresh_token. Changing it makes
	// the stored tokens unreadable: the configured refresh_token is used
	// again.
	TokenKey     string `yaml:"token_key"`
	TokenKeyFile string `yaml:"token_key_file"`

	// SystemHeader and SystemFooter fill GitLab's %{SYSTEM_HEADER} and
	// %{SYSTEM_FOOTER} in every project's templates. Optional.
	SystemHeader string `yaml:"system_header"`
	SystemFooter string `yaml:"system_footer"`
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
	// Aliases are more addresses of the desk: mail to them (forwarded to
	// the intake mailbox, or in the desk's own) is the desk's. Optional.
	Aliases []string `yaml:"aliases"`
	// IMAP or Graph is the desk's own mailbox, at most one of them;
	// optional when an intake mailbox serves the desk.
	IMAP IMAP `yaml:"imap"`
	// Graph reads a Microsoft 365 mailbox through Microsoft Graph instead
	// of IMAP. Optional.
	Graph Graph `yaml:"graph"`
	SMTP  SMTP  `yaml:"smtp"`
	// Templates override the default mails, by kind: thank_you, note,
	// new_participant, closed, reopened. Placeholders in GitLab's style:
	// %{TICKET_REF}, %{TICKET_ID}, %{TICKET_URL}, %{TICKET_DESCRIPTION},
	// %{NOTE_TEXT}, %{PROJECT_NAME}, %{UNSUBSCRIBE_URL}, and GitLab's
	// %{ISSUE_ID}, %{ISSUE_PATH}, %{ISSUE_URL}, %{ISSUE_DESCRIPTION},
	// %{SYSTEM_HEADER}, %{SYSTEM_FOOTER}, %{ADDITIONAL_TEXT}.
	Templates map[string]Template `yaml:"templates"`
	// DKIM signs the project's outbound mail when set. Optional.
	DKIM *DKIM `yaml:"dkim"`

	// AdditionalText fills GitLab's %{ADDITIONAL_TEXT} in the project's
	// templates. Optional.
	AdditionalText string `yaml:"additional_text"`
	// NotifyAgents are addresses told of each new ticket and each
	// customer's reply (a short mail with the ticket's reference, the
	// sender, the text and the ticket's API address). They are never
	// participants and never get customers' mail relayed. Optional.
	NotifyAgents []string `yaml:"notify_agents"`
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

// HasMailbox reports whether the desk has a mailbox of its own (else the
// intake mailbox serves it).
func (p Project) HasMailbox() bool { return p.IMAP.Host != "" || p.Graph.Configured() }

// TemplateKinds are the kinds of mail a template may be given for.
func TemplateKinds() []string {
	return []string{"thank_you", "note", "new_participant", "closed", "reopened", "relay", "agent_notice"}
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
	// Auth is password (default), xoauth2 or oauthbearer: see OAuth2.
	Auth   string `yaml:"auth"`
	OAuth2 OAuth2 `yaml:"oauth2"`
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
	// Idle keeps one IMAP connection per mailbox in IDLE (RFC 2177), held
	// by one scheduler of all replicas, and queues a fetch within a second
	// of the server reporting new mail. Polling every PollInterval stays
	// and remains the guarantee: a watcher that fails costs latency, never
	// mail. Costs one IMAP connection per mailbox. Defaults to false.
	Idle bool `yaml:"idle"`
}

// Graph is a Microsoft 365 mailbox read through Microsoft Graph (v1.0) with
// the OAuth2 client credentials grant: an app registration in the tenant
// with the Mail.ReadWrite application permission. It is configured when
// any of tenant_id, client_id, client_secret(_file) or user is set.
type Graph struct {
	// TenantID is the directory (tenant) ID or a verified domain. Required.
	TenantID string `yaml:"tenant_id"`
	// ClientID is the app registration's application (client) ID. Required.
	ClientID string `yaml:"client_id"`
	// ClientSecret is the app registration's client secret (or
	// client_secret_file). Required.
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// User is the mailbox: its address (user principal name) or object ID.
	// Defaults to the project's address.
	User string `yaml:"user"`
	// Folder is a well-known folder name (Inbox, Archive, ...) or a path of
	// display names from the top of the mailbox (Inbox/Support). Defaults
	// to Inbox.
	Folder string `yaml:"folder"`
	// PollInterval is how often the mailbox is fetched. Defaults to 30s; at
	// least 1s.
	PollInterval Duration `yaml:"poll_interval"`
	// AfterProcessing is seen (default: marked read), move or delete (to
	// Deleted Items); applied only after the message's outcome is
	// committed.
	AfterProcessing string `yaml:"after_processing"`
	// ProcessedFolder is where move puts processed mail, a path of display
	// names like Folder, created when missing. Defaults to Processed.
	ProcessedFolder string `yaml:"processed_folder"`
	// BatchSize is the most messages one fetch run downloads. Defaults to
	// 100.
	BatchSize int `yaml:"batch_size"`
	// AuthorityURL is the base of the token endpoint
	// (AuthorityURL/{tenant}/oauth2/v2.0/token). Defaults to
	// https://login.microsoftonline.com; national clouds and tests only.
	AuthorityURL string `yaml:"authority_url"`
	// APIURL is the base of the Graph API. Defaults to
	// https://graph.microsoft.com/v1.0; national clouds and tests only.
	APIURL string `yaml:"api_url"`
}

// Configured reports whether the section is used.
func (g Graph) Configured() bool {
	return g.TenantID != "" || g.ClientID != "" || g.ClientSecret != "" || g.ClientSecretFile != "" || g.User != ""
}

// Defaults of a Graph mailbox.
const (
	DefaultGraphAuthorityURL = "https://login.microsoftonline.com"
	DefaultGraphAPIURL       = "https://graph.microsoft.com/v1.0"
)

// withDefaults fills the defaults of a configured section; address is the
// mailbox's own address (the default user).
func (g *Graph) withDefaults(address string) {
	if !g.Configured() {
		return
	}
	if g.User == "" {
		g.User = address
	}
	if g.Folder == "" {
		g.Folder = "Inbox"
	}
	if g.PollInterval == 0 {
		g.PollInterval = Duration(30 * time.Second)
	}
	if g.AfterProcessing == "" {
		g.AfterProcessing = "seen"
	}
	if g.ProcessedFolder == "" {
		g.ProcessedFolder = "Processed"
	}
	if g.BatchSize == 0 {
		g.BatchSize = 100
	}
	if g.AuthorityURL == "" {
		g.AuthorityURL = DefaultGraphAuthorityURL
	}
	if g.APIURL == "" {
		g.APIURL = DefaultGraphAPIURL
	}
	g.AuthorityURL = strings.TrimRight(g.AuthorityURL, "/")
	g.APIURL = strings.TrimRight(g.APIURL, "/")
}

// validate names every problem of the section at (e.g. "projects[0]
// (acme).graph"), never a secret.
func (g Graph) validate(at string) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if g.TenantID == "" {
		bad("%s.tenant_id: required (the directory ID of the Microsoft 365 tenant)", at)
	}
	if g.ClientID == "" {
		bad("%s.client_id: required (the application ID of the app registration)", at)
	}
	if g.ClientSecret == "" {
		bad("%s.client_secret: required (or client_secret_file)", at)
	}
	if g.User == "" {
		bad("%s.user: required (the mailbox address)", at)
	}
	if strings.ContainsAny(g.TenantID+g.User, "/?#% ") {
		bad("%s: tenant_id and user may not contain '/', '?', '#', '%%' or spaces", at)
	}
	errs = append(errs, g.polling().validate(at)...)
	for _, u := range []struct{ field, raw string }{{"authority_url", g.AuthorityURL}, {"api_url", g.APIURL}} {
		if err := checkURL(at+"."+u.field, u.raw, "https://…", map[string]bool{"https": true, "http": true}); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Polling is how a mailbox is polled and what becomes of processed mail,
// whichever kind of mailbox it is.
type Polling struct {
	Folder          string
	PollInterval    Duration
	AfterProcessing string
	ProcessedFolder string
	BatchSize       int
}

// Polling returns the polling settings of the project's mailbox: its
// graph section's when that is configured, else its imap section's.
func (p Project) Polling() Polling {
	if p.Graph.Configured() {
		return p.Graph.polling()
	}
	return p.IMAP.polling()
}

func (g Graph) polling() Polling {
	return Polling{Folder: g.Folder, PollInterval: g.PollInterval, AfterProcessing: g.AfterProcessing,
		ProcessedFolder: g.ProcessedFolder, BatchSize: g.BatchSize}
}

func (m IMAP) polling() Polling {
	return Polling{Folder: m.Folder, PollInterval: m.PollInterval, AfterProcessing: m.AfterProcessing,
		ProcessedFolder: m.ProcessedFolder, BatchSize: m.BatchSize}
}

// validate names every problem of the settings of the mailbox at.
func (p Polling) validate(at string) []error {
	var errs []error
	if time.Duration(p.PollInterval) < time.Second {
		errs = append(errs, fmt.Errorf("%s.poll_interval %s: at least 1s", at, p.PollInterval))
	}
	if !oneOf(p.AfterProcessing, "seen", "move", "delete") {
		errs = append(errs, fmt.Errorf("%s.after_processing %q: want seen, move or delete", at, p.AfterProcessing))
	}
	if p.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("%s.batch_size %d: at least 1", at, p.BatchSize))
	}
	return errs
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
	// Auth is password (default), xoauth2 or oauthbearer: see OAuth2.
	// With an OAuth2 auth, Username (the mailbox) is required.
	Auth   string `yaml:"auth"`
	OAuth2 OAuth2 `yaml:"oauth2"`
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
	if err := read("mail.token_key", &c.Mail.TokenKey, c.Mail.TokenKeyFile); err != nil {
		return err
	}
	if err := read("http.link_secret", &c.HTTP.LinkSecret, c.HTTP.LinkSecretFile); err != nil {
		return err
	}
	for i := range c.HTTP.Tokens {
		t := &c.HTTP.Tokens[i]
		if err := read(fmt.Sprintf("http.tokens[%d].token", i), &t.Token, t.TokenFile); err != nil {
			return err
		}
	}
	if err := read("intake.imap.password", &c.Intake.IMAP.Password, c.Intake.IMAP.PasswordFile); err != nil {
		return err
	}
	if err := c.Intake.IMAP.OAuth2.readFiles("intake.imap.oauth2", read); err != nil {
		return err
	}
	if err := read("intake.graph.client_secret", &c.Intake.Graph.ClientSecret, c.Intake.Graph.ClientSecretFile); err != nil {
		return err
	}
	for i := range c.Projects {
		p := &c.Projects[i]
		if err := read(fmt.Sprintf("projects[%d].imap.password", i), &p.IMAP.Password, p.IMAP.PasswordFile); err != nil {
			return err
		}
		if err := read(fmt.Sprintf("projects[%d].graph.client_secret", i), &p.Graph.ClientSecret, p.Graph.ClientSecretFile); err != nil {
			return err
		}
		if err := read(fmt.Sprintf("projects[%d].smtp.password", i), &p.SMTP.Password, p.SMTP.PasswordFile); err != nil {
			return err
		}
		if err := p.IMAP.OAuth2.readFiles(fmt.Sprintf("projects[%d].imap.oauth2", i), read); err != nil {
			return err
		}
		if err := p.SMTP.OAuth2.readFiles(fmt.Sprintf("projects[%d].smtp.oauth2", i), read); err != nil {
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

// The worker's defaults, set here only: jobs.NewWorker falls back to the
// same constants when given zero.
const (
	DefaultConcurrency       = 32
	DefaultNotifyConcurrency = 4
	DefaultShutdownTimeout   = 30 * time.Second
)

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
	if c.HTTP.LinkTTL == 0 {
		c.HTTP.LinkTTL = Duration(30 * 24 * time.Hour)
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
	defInt(&c.Worker.Concurrency, DefaultConcurrency)
	defInt(&c.Worker.NotifyConcurrency, DefaultNotifyConcurrency)
	defInt(&c.Worker.ProcessRetries, 8)
	defInt(&c.Worker.NotifyRetries, 12)
	if c.Worker.ShutdownTimeout == 0 {
		c.Worker.ShutdownTimeout = Duration(DefaultShutdownTimeout)
	}
	def(&c.Log.Level, "info")
	c.Intake.Address = strings.ToLower(strings.TrimSpace(c.Intake.Address))
	c.Intake.IMAP.withDefaults(c.Intake.Address)
	c.Intake.Graph.withDefaults(c.Intake.Address)
	for i := range c.Projects {
		p := &c.Projects[i]
		p.Key = strings.TrimSpace(p.Key)
		def(&p.Name, p.Key)
		p.Address = strings.ToLower(strings.TrimSpace(p.Address))
		for j, a := range p.Aliases {
			p.Aliases[j] = strings.ToLower(strings.TrimSpace(a))
		}
		for j, a := range p.NotifyAgents {
			p.NotifyAgents[j] = strings.ToLower(strings.TrimSpace(a))
		}
		p.IMAP.withDefaults(p.Address)
		p.Graph.withDefaults(p.Address)
		def(&p.SMTP.Security, "starttls")
		def(&p.SMTP.Auth, AuthPassword)
		if p.SMTP.Port == 0 {
			p.SMTP.Port = map[string]int{"tls": 465, "starttls": 587, "none": 25}[p.SMTP.Security]
		}
	}
}

// withDefaults fills a mailbox's defaults; address is the default
// username.
func (m *IMAP) withDefaults(address string) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&m.Security, "tls")
	def(&m.Folder, "INBOX")
	def(&m.AfterProcessing, "seen")
	def(&m.ProcessedFolder, "Processed")
	def(&m.Username, address)
	def(&m.Auth, AuthPassword)
	if m.BatchSize == 0 {
		m.BatchSize = 100
	}
	if m.PollInterval == 0 {
		m.PollInterval = Duration(30 * time.Second)
	}
	if m.Port == 0 {
		m.Port = map[string]int{"tls": 993}[m.Security]
		if m.Port == 0 {
			m.Port = 143
		}
	}
}

// validate reports what is wrong with a mailbox, at its place in the
// config (e.g. "projects[0] (acme).imap").
func (m IMAP) validate(at string) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.Host == "" {
		bad("%s.host: required", at)
	}
	if !oneOf(m.Security, "tls", "starttls", "none") {
		bad("%s.security %q: want tls, starttls or none", at, m.Security)
	}
	if m.Password == "" && m.Auth == AuthPassword {
		bad("%s.password: required (or password_file)", at)
	}
	if m.Port <= 0 || m.Port > 65535 {
		bad("%s.port %d: out of range", at, m.Port)
	}
	return append(errs, m.polling().validate(at)...)
}

// validateIntake checks the intake and that every address of the desks
// (address, aliases) and the intake's is one desk's only.
func (c *Config) validateIntake(bad func(format string, args ...any)) {
	// Addresses are compared without +tag: mail to support+x@ is
	// support@'s. The one exception is a desk's address or alias at the
	// intake with the desk's own key as tag (incoming+acme@): routed by
	// that sub-address, it is the desk's without a custom address.
	owner := map[string]string{}
	intakeOf := func(addr, key string) bool {
		return c.Intake.Enabled() && addr == subAddress(c.Intake.Address, key)
	}
	for i, p := range c.Projects {
		if _, ok := owner[baseOf(p.Address)]; !ok && !intakeOf(p.Address, p.Key) { // two desks of one address are reported above
			owner[baseOf(p.Address)] = fmt.Sprintf("projects[%d] (%s)", i, p.Key)
		}
	}
	claim := func(addr, who string) {
		if prev, ok := owner[baseOf(addr)]; ok && prev != who {
			bad("%s: address %q is also %s's", who, addr, prev)
			return
		}
		owner[baseOf(addr)] = who
	}
	if in := c.Intake; in.Enabled() {
		if !bareAddress(in.Address) || strings.Contains(in.Address, "+") {
			bad("intake.address %q: want a bare address without +tag, like incoming@example.com", in.Address)
		}
		switch {
		case in.Graph.Configured() && in.IMAP.Host != "":
			bad("intake: imap and graph are both set; a mailbox is one or the other")
		case in.Graph.Configured():
			for _, err := range in.Graph.validate("intake.graph") {
				bad("%s", err)
			}
		default:
			for _, err := range in.IMAP.validate("intake.imap") {
				bad("%s", err)
			}
			for _, err := range validateAuth("intake.imap", in.IMAP.Auth, in.IMAP.OAuth2, c.Mail.TokenKey) {
				bad("%s", err)
			}
		}
		claim(in.Address, "intake")
	}
	for i, p := range c.Projects {
		at := fmt.Sprintf("projects[%d] (%s)", i, p.Key)
		if !p.HasMailbox() && !c.Intake.Enabled() {
			bad("%s.imap.host: required (or set intake: so that the intake mailbox serves the desk)", at)
		}
		for j, a := range p.Aliases {
			if !bareAddress(a) {
				bad("%s.aliases[%d] %q: want a bare address like help@example.com", at, j, a)
				continue
			}
			if !intakeOf(a, p.Key) {
				claim(a, at)
			}
		}
	}
}

// baseOf is addr without its +tag.
func baseOf(addr string) string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok {
		return addr
	}
	base, _, _ := strings.Cut(local, "+")
	return base + "@" + domain
}

// subAddress is addr with tag as its sub-address: incoming+acme@x.
func subAddress(addr, tag string) string {
	local, domain, _ := strings.Cut(addr, "@")
	return local + "+" + tag + "@" + domain
}

// bareAddress reports whether s is an address alone, without a name or
// angle brackets.
func bareAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s
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
	if c.HTTP.LinkSecret != "" && len(c.HTTP.LinkSecret) < 16 {
		bad("http.link_secret: at least 16 characters when set (it signs the links in mail; e.g. `openssl rand -hex 32`)")
	}
	if c.HTTP.LinkTTL < 0 {
		bad("http.link_ttl: must be positive (default 720h)")
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
	if err := c.validateTokenKey(); err != nil {
		errs = append(errs, err)
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
		if !bareAddress(p.Address) {
			bad("%s.address %q: want a bare address like support@example.com", at, p.Address)
		}
		if addrs[p.Address] {
			bad("%s.address %q: used by two projects", at, p.Address)
		}
		addrs[p.Address] = true
		for _, a := range p.NotifyAgents {
			if pa, err := mail.ParseAddress(a); err != nil || pa.Address != a || a == p.Address {
				bad("%s.notify_agents %q: want a bare address like agent@example.com, not the desk's", at, a)
			}
		}
		switch {
		case p.Graph.Configured() && p.IMAP.Host != "":
			bad("%s: imap and graph are both set; a mailbox is one or the other", at)
		case p.Graph.Configured():
			errs = append(errs, p.Graph.validate(at+".graph")...)
		case p.HasMailbox():
			for _, err := range p.IMAP.validate(at + ".imap") {
				bad("%s", err)
			}
			errs = append(errs, validateAuth(at+".imap", p.IMAP.Auth, p.IMAP.OAuth2, c.Mail.TokenKey)...)
		}
		if p.SMTP.Host == "" {
			bad("%s.smtp.host: required", at)
		}
		if !oneOf(p.SMTP.Security, "tls", "starttls", "none") {
			bad("%s.smtp.security %q: want tls, starttls or none", at, p.SMTP.Security)
		}
		if p.SMTP.Username != "" && p.SMTP.Password == "" && p.SMTP.Auth == AuthPassword {
			bad("%s.smtp.password: required with a username (or password_file)", at)
		}
		errs = append(errs, validateAuth(at+".smtp", p.SMTP.Auth, p.SMTP.OAuth2, c.Mail.TokenKey)...)
		if UsesOAuth2(p.SMTP.Auth) && p.SMTP.Username == "" {
			bad("%s.smtp.username: required with auth %s (the mailbox the token is for)", at, p.SMTP.Auth)
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
		if p.SMTP.Port <= 0 || p.SMTP.Port > 65535 {
			bad("%s: port out of range", at)
		}
	}
	c.validateIntake(bad)
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
