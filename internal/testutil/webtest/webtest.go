// Package webtest serves flowgate's whole HTTP surface (console, API,
// health) over a real store for tests, as `flowgate serve` wires it.
package webtest

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/validation"
)

// Options configure Serve.
type Options struct {
	TLS        bool                // serve over HTTPS (a test certificate)
	Validation *validation.Service // nil: no Validate pages or endpoint
}

// Serve starts the HTTP surface over st; it stops when the test ends.
func Serve(t testing.TB, st *store.Store, o Options) *httptest.Server {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	live, err := liveconfig.Load(ctx, st, log)
	if err != nil {
		t.Fatal(err)
	}
	go live.Run(ctx)
	// The queue's controls over workers that do not run: waiting mail
	// stays waiting, for the queue pages to act on.
	wk := queue.NewWorkers(st, live, &delivery.Client{Hostname: "gw.flowgate.test"}, queue.WorkerConfig{Hostname: "gw.flowgate.test"}, log)
	h := app.NewHandler(app.HTTPDeps{Store: st, Live: live, Metrics: prometheus.NewRegistry(), Log: log, Validation: o.Validation,
		Queue: queue.NewControl(wk)})
	var srv *httptest.Server
	if o.TLS {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}
