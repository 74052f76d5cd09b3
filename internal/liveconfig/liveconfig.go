// Package liveconfig keeps the routing index the relay uses up to date. It
// builds a routing.Index from the store at start, and rebuilds it when a
// connector or accepted domain changes: at once for changes made in this
// process, and through PostgreSQL LISTEN/NOTIFY for changes made by any
// other process sharing the database. Readers take the current index with
// one atomic load, so a message sees one consistent configuration and no
// database round trip is needed per message.
package liveconfig

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/routing"
	"github.com/flowgate/flowgate/internal/store"
)

// SafetyReload is how often the index is rebuilt even without a change
// signal, in case a notification was lost.
const SafetyReload = 30 * time.Second

// Config holds the current routing index.
type Config struct {
	st      *store.Store
	log     *slog.Logger
	current atomic.Pointer[routing.Index]
	kick    chan struct{}
	version atomic.Int64
	started atomic.Int64 // when the load behind the current index began (Unix ns)
}

// Load builds the first index; Run keeps it current.
func Load(ctx context.Context, st *store.Store, log *slog.Logger) (*Config, error) {
	c := &Config{st: st, log: log, kick: make(chan struct{}, 1)}
	if err := c.reload(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Index returns the current index. It never returns nil after Load.
func (c *Config) Index() *routing.Index { return c.current.Load() }

// Version counts the indexes built so far.
func (c *Config) Version() int64 { return c.version.Load() }

// Reload asks for a rebuild soon (coalesced).
func (c *Config) Reload() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// LoadedSince reports whether the current index was loaded from the
// database after t, so it reflects every change committed before t.
func (c *Config) LoadedSince(t time.Time) bool { return c.started.Load() > t.UnixNano() }

func (c *Config) reload(ctx context.Context) error {
	start := time.Now().UnixNano()
	cfg, err := LoadRouting(ctx, c.st)
	if err != nil {
		return fmt.Errorf("load routing configuration: %w", err)
	}
	c.current.Store(routing.Build(cfg))
	c.started.Store(start)
	c.version.Add(1)
	in, out := c.current.Load().Counts()
	c.log.Debug("routing index rebuilt", "inbound", in, "outbound", out, "accepted_domains", len(cfg.AcceptedDomains))
	return nil
}

// LoadRouting reads what the routing engine is built from: the accepted
// domains, the active revisions of the enabled connectors and the mail
// flow rules. Validation
// uses it to build an index with a candidate revision in place.
func LoadRouting(ctx context.Context, st *store.Store) (routing.Config, error) {
	var cfg routing.Config
	domains, err := st.ListAcceptedDomains(ctx)
	if err != nil {
		return cfg, err
	}
	for _, d := range domains {
		cfg.AcceptedDomains = append(cfg.AcceptedDomains, connector.AcceptedDomain{Domain: d.Domain, Type: d.DomainType, AllowExternalSenders: d.AllowExternalSenders})
	}
	revs, err := st.ActiveRevisions(ctx)
	if err != nil {
		return cfg, err
	}
	if cfg.Rules, err = st.ListRules(ctx); err != nil {
		return cfg, err
	}
	for _, r := range revs {
		switch {
		case r.Inbound != nil:
			cfg.Inbound = append(cfg.Inbound, routing.Inbound{ID: r.ID, Name: r.Name, Revision: r.Revision, Spec: *r.Inbound})
		case r.Outbound != nil:
			cfg.Outbound = append(cfg.Outbound, routing.Outbound{ID: r.ID, Name: r.Name, Revision: r.Revision, Spec: *r.Outbound, Held: r.Held})
		}
	}
	return cfg, nil
}

// Run rebuilds the index on every change signal until ctx ends.
func (c *Config) Run(ctx context.Context) {
	local, unsubscribe := c.st.SubscribeChanges()
	defer unsubscribe()
	go c.st.ListenChanges(ctx, c.Reload)
	ticker := time.NewTicker(SafetyReload)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-local:
		case <-c.kick:
		case <-ticker.C:
		}
		if err := c.reload(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("routing index not rebuilt; the previous one stays in use", "err", err)
			time.AfterFunc(time.Second, c.Reload)
		}
	}
}
