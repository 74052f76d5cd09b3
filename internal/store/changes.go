package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// configChannel is the PostgreSQL notification channel for configuration
// changes (connectors and accepted domains).
const configChannel = "flowgate_config"

// changeHub fans configuration changes out to in-process subscribers.
type changeHub struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// SubscribeChanges returns a channel that receives a value (coalesced)
// after every committed change to connectors or accepted domains made
// through this Store, and a function that unsubscribes.
func (s *Store) SubscribeChanges() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.changes.mu.Lock()
	if s.changes.subs == nil {
		s.changes.subs = map[chan struct{}]struct{}{}
	}
	s.changes.subs[ch] = struct{}{}
	s.changes.mu.Unlock()
	return ch, func() {
		s.changes.mu.Lock()
		delete(s.changes.subs, ch)
		s.changes.mu.Unlock()
	}
}

// announce tells in-process subscribers that the configuration changed.
func (s *Store) announce() {
	s.changes.mu.Lock()
	defer s.changes.mu.Unlock()
	for ch := range s.changes.subs {
		select {
		case ch <- struct{}{}:
		default: // one pending signal is enough
		}
	}
}

// notifyInTx bumps the configuration epoch and, on PostgreSQL, queues a
// notification; both reach other processes when tx commits, and never if
// it rolls back.
func (s *Store) notifyInTx(tx *gorm.DB) error {
	if err := tx.Exec("UPDATE config_epoch SET epoch = epoch + 1 WHERE id = 1").Error; err != nil {
		return fmt.Errorf("bump configuration epoch: %w", err)
	}
	if s.dialect != Postgres {
		return nil
	}
	return tx.Exec("SELECT pg_notify(?, '')", configChannel).Error
}

// ConfigEpoch returns the configuration change counter.
func (s *Store) ConfigEpoch(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Raw("SELECT epoch FROM config_epoch WHERE id = 1").Scan(&n).Error
	return n, err
}

// EpochPoll is how often ListenChanges polls the epoch on SQLite.
const EpochPoll = 250 * time.Millisecond

// configChange runs fn in a transaction that also notifies other processes,
// and announces the change in this process after the commit.
func (s *Store) configChange(ctx context.Context, fn func(tx *gorm.DB) error) error {
	err := s.Transact(ctx, func(tx *gorm.DB) error {
		if err := fn(tx); err != nil {
			return err
		}
		return s.notifyInTx(tx)
	})
	if err == nil {
		s.announce()
	}
	return err
}

// ListenChanges calls fn whenever another process (or this one) commits a
// configuration change, until ctx ends. On PostgreSQL it holds a LISTEN
// connection and reconnects after errors, calling fn after each reconnect
// since notifications may have been missed. On SQLite it polls the
// configuration epoch every EpochPoll.
func (s *Store) ListenChanges(ctx context.Context, fn func()) {
	if s.dialect != Postgres {
		s.pollEpoch(ctx, fn)
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, fn)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("configuration listener lost its connection; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		fn()
	}
}

func (s *Store) listenOnce(ctx context.Context, fn func()) error {
	conn, err := s.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+configChannel); err != nil {
		return err
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		fn()
	}
}

func (s *Store) pollEpoch(ctx context.Context, fn func()) {
	last, _ := s.ConfigEpoch(ctx)
	t := time.NewTicker(EpochPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.ConfigEpoch(ctx)
		if err != nil || n == last {
			continue
		}
		last = n
		fn()
	}
}

// Connect opens a connection of its own to the PostgreSQL database,
// outside the pools, for a session that must last (LISTEN, a session
// advisory lock). The caller closes it.
func (s *Store) Connect(ctx context.Context) (*pgx.Conn, error) {
	if s.dialect != Postgres {
		return nil, errors.New("a dedicated connection needs PostgreSQL")
	}
	return pgx.Connect(ctx, s.url)
}
