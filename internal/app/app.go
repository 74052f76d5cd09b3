// Package app wires flowgate's parts into the running service: it opens
// and migrates the store, creates the first admin from the environment,
// serves HTTP (health, API, console) and shuts everything down in reverse
// order of start.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flowgate/flowgate/internal/api"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/console"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/validation"
)

// Version is set at build time with -ldflags "-X …/internal/app.Version=…".
var Version = "dev"

// OpenStore opens the configured database.
func OpenStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.Store, error) {
	return store.Open(ctx, store.Options{DatabaseURL: cfg.DatabaseURL, DataDir: cfg.DataDir, Logger: log})
}

// Addrs are the addresses flowgate listens on once started.
type Addrs struct {
	HTTP    string
	SMTP    string
	Metrics string // its own /metrics listener; empty: none
}

// Serve runs flowgate until ctx is cancelled. ready, if not nil, receives
// the listeners' addresses once they accept connections. Shutdown runs in
// reverse order of start: the relay finishes sessions in flight, the queue
// commits what it holds, the HTTP server stops, the database closes.
func Serve(ctx context.Context, cfg *config.Config, log *slog.Logger, ready func(Addrs)) error {
	st, err := OpenStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	unlock, err := st.LockServe()
	if err != nil {
		return err
	}
	defer unlock()
	if n, err := queue.ReleaseOrphanedLeases(ctx, st); err != nil {
		return err
	} else if n > 0 {
		log.Info("delivery leases of a previous run released; their messages are due now", "messages", n)
	}
	if err := ensureAdmin(ctx, st, cfg, log); err != nil {
		return err
	}
	sec := console.Security{SecureCookies: cfg.PublicHTTPS(), TrustedProxies: cfg.TrustedProxies}
	if n, err := st.CountUsers(ctx); err != nil {
		return err
	} else if n == 0 {
		if sec.SetupCode, err = newSetupCode(); err != nil {
			return err
		}
		log.Warn("no user yet: open the console's /setup page and enter this setup code to create the first admin (or set FLOWGATE_ADMIN_EMAIL and FLOWGATE_ADMIN_PASSWORD)",
			"setup_code", sec.SetupCode)
	}
	var httpCert []tls.Certificate
	if cfg.HTTPTLSCert != "" {
		c, err := tls.LoadX509KeyPair(cfg.HTTPTLSCert, cfg.HTTPTLSKey)
		if err != nil {
			return fmt.Errorf("FLOWGATE_HTTP_TLS_CERT/FLOWGATE_HTTP_TLS_KEY: %w", err)
		}
		httpCert = []tls.Certificate{c}
	}
	if stopPprof, err := startPprof(cfg.PprofAddr, log); err != nil {
		return fmt.Errorf("FLOWGATE_PPROF_ADDR: %w", err)
	} else {
		defer stopPprof()
	}

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	live, err := liveconfig.Load(ctx, st, log)
	if err != nil {
		return err
	}
	go live.Run(runCtx)

	cert, err := relay.LoadServerCertificate(cfg.TLSCert, cfg.TLSKey, cfg.DataDir, cfg.Hostname, log.With("component", "relay"))
	if err != nil {
		return err
	}
	clientRoots, err := relay.CertPool(cfg.ClientCA)
	if err != nil {
		return fmt.Errorf("FLOWGATE_CLIENT_CA: %w", err)
	}
	writer := queue.NewWriter(st, log)
	defer writer.Close()
	rl := relay.New(relay.Config{
		Hostname:            cfg.Hostname,
		MaxMessageBytes:     cfg.MaxMessageSize,
		MaxRecipients:       cfg.SMTPMaxRecipients,
		MaxConnections:      cfg.SMTPMaxConnections,
		MaxConnectionsPerIP: cfg.SMTPMaxConnectionsPerIP,
		DataDeadline:        cfg.SMTPDataDeadline,
		SessionDeadline:     cfg.SMTPSessionDeadline,
		QueueLifetime:       cfg.QueueLifetime,
		TraceHeaders:        cfg.TraceHeaders,
		Certificate:         cert,
		ClientRoots:         clientRoots,
	}, live, writer, log.With("component", "relay"))
	outboundRoots, err := relay.CertPool(cfg.OutboundCA)
	if err != nil {
		return fmt.Errorf("FLOWGATE_OUTBOUND_CA: %w", err)
	}
	client := &delivery.Client{Hostname: cfg.Hostname, Roots: outboundRoots, Resolver: &delivery.Resolver{Server: cfg.DNSServer}}
	defer client.Close()
	workers := queue.NewWorkers(st, live, client, queue.WorkerConfig{
		Hostname: cfg.Hostname, RetrySchedule: cfg.RetrySchedule, Lifetime: cfg.QueueLifetime,
		Concurrency: cfg.DeliveryConcurrency, DestinationConcurrency: cfg.DeliveryDestinationConcurrency, Lease: cfg.DeliveryLease,
	}, log.With("component", "delivery"))
	writer.HandOverTo(workers) // what this process accepts, it delivers from memory while it has free slots
	workersCtx, stopWorkers := context.WithCancel(context.Background())
	workersDone := make(chan struct{})
	go func() { workers.Run(workersCtx, 20*time.Second); close(workersDone) }()
	defer func() { stopWorkers(); <-workersDone }()
	go queue.RunPruner(runCtx, st, cfg.TraceRetention, time.Hour, log.With("component", "trace-retention"))

	smtpLn, err := listenSMTP(ctx, cfg.SMTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.SMTPAddr, err)
	}
	smtpErr := make(chan error, 1)
	go func() { smtpErr <- rl.Serve(smtpLn) }()

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		_ = rl.Shutdown(context.Background())
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	smtpPort := 0
	if a, ok := smtpLn.Addr().(*net.TCPAddr); ok {
		smtpPort = a.Port
	}
	validator := &validation.Service{
		Store:    st,
		Outbound: &validation.Outbound{Hostname: cfg.Hostname, Roots: outboundRoots, Resolver: client.Resolver, Port: client.Port},
		Inbound:  &validation.Inbound{Relay: rl, Port: smtpPort, Store: st, Hostname: cfg.Hostname},
	}
	metrics := newMetrics(st, live, rl, writer, workers)
	var httpMetrics prometheus.Gatherer
	var metricsLn net.Listener
	switch {
	case cfg.MetricsAddr != "":
		if metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			_ = rl.Shutdown(context.Background())
			_ = ln.Close()
			return fmt.Errorf("FLOWGATE_METRICS_ADDR: listen on %s: %w", cfg.MetricsAddr, err)
		}
	case loopbackOnly(cfg.HTTPAddr):
		httpMetrics = metrics
	default:
		log.Info("/metrics is not served: FLOWGATE_HTTP_ADDR is reachable from other hosts; set FLOWGATE_METRICS_ADDR to serve it on an address of its own")
	}
	srv := &http.Server{
		Handler: NewHandler(HTTPDeps{
			Store: st, Live: live, Resolver: client.Resolver, Metrics: httpMetrics, Log: log, Validation: validator,
			Writer: writer, MinFree: cfg.MaxMessageSize, AllowedHosts: allowedHosts(cfg), Security: sec,
			TraceRetention: cfg.TraceRetention, Queue: queue.NewControl(workers),
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	if httpCert != nil {
		srv.TLSConfig = &tls.Config{Certificates: httpCert, MinVersion: tls.VersionTLS12}
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	addrs := Addrs{HTTP: ln.Addr().String(), SMTP: smtpLn.Addr().String()}
	var metricsSrv *http.Server
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 60 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		go func() { errc <- metricsSrv.Serve(metricsLn) }()
		addrs.Metrics = metricsLn.Addr().String()
	}
	log.Info("flowgate started", "version", Version, "http_addr", addrs.HTTP, "https", httpCert != nil, "smtp_addr", addrs.SMTP,
		"metrics_addr", addrs.Metrics, "database", string(st.Dialect()), "data_dir", cfg.DataDir)
	if ready != nil {
		ready(addrs)
	}

	var runErr error
	select {
	case err := <-errc:
		runErr = fmt.Errorf("http server: %w", err)
	case err := <-smtpErr:
		runErr = fmt.Errorf("smtp relay: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rl.Shutdown(shutdownCtx); err != nil {
		log.Warn("relay shutdown", "err", err)
	}
	stopWorkers()
	<-workersDone
	writer.Close()
	stopRun()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(shutdownCtx)
	}
	log.Info("stopped")
	return runErr
}

// HTTPDeps is what flowgate's HTTP surface is built from.
type HTTPDeps struct {
	Store      *store.Store
	Live       *liveconfig.Config
	Resolver   *delivery.Resolver // MX lookups for route tests; nil: none
	Metrics    prometheus.Gatherer
	Log        *slog.Logger
	Validation *validation.Service // nil: validation is unavailable
	Writer     *queue.Writer       // the relay's queue writer, for /readyz; nil: none
	MinFree    int64               // bytes a SQLite data directory needs free to be ready (the largest message)
	// AllowedHosts are the names the console and API answer to besides IP
	// addresses (hostCheck); nil: any.
	AllowedHosts []string
	Security     console.Security // proxies, HTTPS, setup code
	// TraceRetention is how long the trace is kept: the longest window of
	// a rule preview (0: the API's default, 90 days).
	TraceRetention time.Duration
	// Queue is the queue's controls (hold, retry, bounce, ...); nil: the
	// API answers 503 and the console hides them.
	Queue *queue.Control
}

// NewHandler is flowgate's whole HTTP surface: health, API, metrics (when
// d.Metrics is not nil) and the console, behind the Host check.
func NewHandler(d HTTPDeps) http.Handler {
	st, live, resolver, metrics, log := d.Store, d.Live, d.Resolver, d.Metrics, d.Log
	r := chi.NewRouter()
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	r.Handle("/readyz", readiness{st: st, writer: d.Writer, minFree: d.MinFree})
	r.Mount("/api/v1", api.New(st, live, resolver, log).WithValidation(d.Validation).WithTraceRetention(d.TraceRetention).WithQueue(d.Queue).Handler())
	if metrics != nil {
		r.Handle("/metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
	}
	console.New(st, log.With("component", "console")).WithValidation(d.Validation).WithSecurity(d.Security).WithQueue(d.Queue).Register(r)
	return hostCheck(d.AllowedHosts, r)
}

// ensureAdmin creates FLOWGATE_ADMIN_EMAIL when no user exists yet.
func ensureAdmin(ctx context.Context, st *store.Store, cfg *config.Config, log *slog.Logger) error {
	if cfg.AdminEmail == "" {
		return nil
	}
	n, err := st.CountUsers(ctx)
	if err != nil || n > 0 {
		return err
	}
	u, err := st.CreateUser(ctx, store.System("startup"), cfg.AdminEmail, cfg.AdminPassword, store.RoleAdmin)
	if err != nil {
		var conflict *store.ConflictError
		if errors.As(err, &conflict) {
			return nil // another process created it first
		}
		return fmt.Errorf("create admin from FLOWGATE_ADMIN_EMAIL: %w", err)
	}
	log.Info("created admin user from the environment", "email", u.Email)
	return nil
}

// listenSMTP listens for the relay. Its connections get no TCP keepalive:
// the relay's command and DATA timeouts already end a session whose client
// went silent, and Go's default keepalive costs four setsockopt calls on
// every accepted connection — with one connection per message, a few
// percent of the relay's system calls (docs/perf.md, "Changes tried").
func listenSMTP(ctx context.Context, addr string) (net.Listener, error) {
	return (&net.ListenConfig{KeepAlive: -1}).Listen(ctx, "tcp", addr)
}
