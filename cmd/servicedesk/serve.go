package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynq/x/metrics"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/servicedesk/servicedesk/api"
	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/ingest"
	"github.com/servicedesk/servicedesk/jobs"
	"github.com/servicedesk/servicedesk/notify"
)

func (c *cli) serve(ctx context.Context, args []string) error {
	fs := newFlags("serve")
	rolesFlag := fs.String("roles", "scheduler,worker,web", "comma-separated roles: scheduler, worker (= ingest + notify), ingest, notify, web")
	metricsListen := fs.String("metrics-listen", "", "without the web role: serve /healthz, /readyz and /metrics on this host:port (default http.metrics_listen)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *metricsListen == "" {
		*metricsListen = c.cfg.HTTP.MetricsListen
	}
	roles := map[string]bool{}
	for _, r := range strings.Split(*rolesFlag, ",") {
		r = strings.TrimSpace(r)
		switch r {
		case "scheduler", "worker", "ingest", "notify", "web":
			roles[r] = true
		case "":
		default:
			return usageError{fmt.Errorf("--roles: unknown role %q (want scheduler, worker, ingest, notify, web)", r)}
		}
	}
	if len(roles) == 0 {
		return usageError{errors.New("--roles: name at least one role")}
	}

	c.startPprof()
	rOpt, rdb, err := c.openRedis(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	st, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	desks, err := c.desks(ctx, st)
	if err != nil {
		return err
	}
	mailboxes, intake, err := c.mailboxes(ctx, st, desks)
	if err != nil {
		return err
	}
	keys, err := c.replyKeys()
	if err != nil {
		return err
	}
	links, err := c.customerLinks()
	if err != nil {
		return err
	}
	client := asynq.NewClientFromRedisClient(rdb)
	enq := jobs.NewEnqueuer(client, c.retries())
	inspector := asynq.NewInspectorFromRedisClient(rdb)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := jobs.NewMetrics(reg)
	projectKeys := make([]string, 0, len(desks))
	for _, d := range desks {
		projectKeys = append(projectKeys, d.Config.Key)
	}
	m.InitProjects(projectKeys)
	if err := c.startMailTokens(st, m); err != nil {
		return err
	}

	// Whatever has started is stopped, newest first, however serve
	// returns: a part failing to start stops the ones before it.
	lc := newLifecycle(c.log)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), c.cfg.Worker.ShutdownTimeout.D()+5*time.Second)
		defer cancel()
		lc.stop(sctx)
		c.log.Info("servicedesk stopped")
	}()
	lc.started("asynq client", func(context.Context) { client.Close() })
	// serveHTTP listens on addr and serves h until shutdown, with the
	// server's timeouts; a failure to serve ends the process.
	serveHTTP := func(addr string, h http.Handler) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: httpReadHeaderTimeout,
			ReadTimeout:       httpReadTimeout,
			WriteTimeout:      httpWriteTimeout,
			IdleTimeout:       httpIdleTimeout,
			MaxHeaderBytes:    httpMaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(c.log.With("component", "http").Handler(), slog.LevelWarn),
		}
		lc.run("http "+addr, func() error {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http: %w", err)
			}
			return nil
		}, func(ctx context.Context) { _ = srv.Shutdown(ctx) })
		c.log.Info("http listening", "addr", ln.Addr().String())
		return nil
	}

	if roles["worker"] || roles["ingest"] || roles["notify"] {
		templates, err := notifyTemplates(c.cfg.Projects)
		if err != nil {
			return err
		}
		// Mail a fetch stores goes straight to this process's process
		// jobs, up to 16 MiB of it, in messages the jobs take with their
		// ledger row. The sync's flow control (mailsync.Options.MaxAhead,
		// per mailbox) keeps one draining mailbox below that for mail of
		// up to 32 KB on average; what does not fit (larger mail, several
		// mailboxes draining at once) is read back from the database.
		handoff := jobs.NewHandoff(16<<20, ingest.InlineReadSize)
		proc := ingest.NewProcessor(ingestStore{st, handoff}, keys, ingestProjects(desks),
			&ingest.Options{Logger: c.log, MaxMessageSize: int64(c.cfg.Limits.MaxMessageSize), Intake: intake, Links: links})
		deliverer := notify.NewDeliverer(st, keys, withCustomerLinks(c.withSMTPTokens(notifyProjects(desks, c.cfg.HTTP.PublicURL)), c.cfg, links), &notify.Options{Logger: c.log,
			MaxAttachmentsSize: int64(c.cfg.Limits.MaxAttachmentsSize), Templates: templates,
			ProjectCeiling: c.cfg.Limits.AutomaticMailPerHour,
			OnSuppressed:   func(project string, cause notify.Cause) { m.Suppressed(project, string(cause)) }})
		lc.started("deliverer", func(context.Context) { deliverer.Close() })
		fetcher := jobs.NewFetcher(st, c.dialer(st, m), enq, mailboxes, int64(c.cfg.Limits.MaxMessageSize), m, c.log)
		fetcher.Handoff = handoff
		fetcher.Again = fetchAgain(rdb, mailboxes)
		w := jobs.NewWorker(rdb,
			fetcher,
			jobs.NewProcessHandler(proc, st, enq, m, c.log),
			jobs.NewSendHandler(deliverer, notify.Permanent, st, m, c.log),
			jobs.WorkerOptions{Concurrency: c.cfg.Worker.Concurrency, NotifyConcurrency: c.cfg.Worker.NotifyConcurrency,
				ShutdownTimeout: c.cfg.Worker.ShutdownTimeout.D(), SendBackoff: durations(c.cfg.Worker.NotifyBackoff),
				IngestOnly: roles["ingest"] && !roles["notify"] && !roles["worker"],
				NotifyOnly: roles["notify"] && !roles["ingest"] && !roles["worker"]}, c.log)
		w.HandleRejections(jobs.NewRejectHandler(notify.NewRejecter(deliverer, st, int64(c.cfg.Limits.MaxMessageSize)),
			notify.Permanent, st, c.log))
		if err := w.Start(); err != nil {
			return err
		}
		lc.started("worker", w.Stop)
	}
	if roles["scheduler"] {
		s := jobs.NewScheduler(enq, mailboxes, st, c.cfg.Scheduler.Tick.D(),
			jobs.OutboxSweep{Every: c.cfg.Scheduler.OutboxSweep.D(), After: c.cfg.Scheduler.OutboxGrace.D()}, c.log)
		s.AnswerRejections(st)
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		lc.run("scheduler", func() error { _ = s.Run(sctx); return nil }, func(context.Context) { cancel() })
		lc.started("idle watchers", c.startIdleWatchers(ctx, rdb, enq, mailboxes, reg))
	}
	if roles["web"] {
		reg.MustRegister(metrics.NewQueueMetricsCollector(inspector))
		mon := asynqmon.New(asynqmon.Options{RootPath: "/monitor", RedisConnOpt: rOpt, PayloadFormatter: payloadFormatter{}})
		lc.started("monitor", func(context.Context) { mon.Close() })
		handler := api.New(apiBackend{st: st, dl: jobs.NewDeadLetters(st, enq, inspector), agent: jobs.NewAgent(st, enq, desks)}, apiTokens(c.cfg.HTTP.Tokens), &api.Options{
			Logger: c.log,
			// The database is checked through the backend's Ping.
			Ready:      []func(context.Context) error{func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
			ReadyNames: []string{"redis"},
			Monitor:    mon,
			Metrics:    promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
			// Browsers may post from the public address when a proxy in
			// front rewrites the Host.
			TrustedOrigins: publicOrigins(c.cfg.HTTP.PublicURL),
			SlowTimeout:    httpSlowTimeout,
			Customer:       &api.Customer{Links: links, Unsubscribe: unsubscriber{st}},
		})
		if err := serveHTTP(c.cfg.HTTP.Listen, handler); err != nil {
			return err
		}
	} else if *metricsListen != "" {
		// No web role: only the probes and this process's own metrics,
		// unauthenticated like /metrics on the web listener.
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
			if err := cmp.Or(rdb.Ping(r.Context()).Err(), st.Ping(r.Context())); err != nil {
				c.log.Warn("not ready", "err", err)
				http.Error(w, "not ready: redis or database unreachable", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok\n")
		})
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		if err := serveHTTP(*metricsListen, mux); err != nil {
			return err
		}
	}
	c.log.Info("servicedesk started", "roles", *rolesFlag, "projects", len(desks), "version", version)

	select {
	case <-ctx.Done():
		c.log.Info("shutting down: draining in-flight work")
		return nil
	case err := <-lc.failed():
		return err
	}
}

// payloadFormatter shows task payloads in the monitor: they hold IDs only,
// never a secret or a mail body, so they are shown as they are.
type payloadFormatter struct{}

func (payloadFormatter) FormatPayload(_ string, payload []byte) string { return string(payload) }

func durations(ds []config.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.D()
	}
	return out
}
