package store

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/gofrs/flock"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/flowgate/flowgate/migrations"
)

func (s *Store) provider() (*goose.Provider, error) {
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, err
	}
	var (
		dialect goose.Dialect
		fsys    fs.FS
		opts    []goose.ProviderOption
	)
	switch s.dialect {
	case Postgres:
		dialect = goose.DialectPostgres
		fsys, err = fs.Sub(migrations.Postgres, "postgres")
		if err != nil {
			return nil, err
		}
		// A session advisory lock: several processes starting at once
		// migrate one after another. Probe every second for 5 minutes.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	default:
		dialect = goose.DialectSQLite3
		fsys, err = fs.Sub(migrations.SQLite, "sqlite")
		if err != nil {
			return nil, err
		}
	}
	return goose.NewProvider(dialect, sqlDB, fsys, opts...)
}

// Migrate applies every pending migration. It is safe to call from several
// processes at once: PostgreSQL serializes them with an advisory lock and
// SQLite with a lock file beside the database. It refuses a database whose
// schema is newer than this binary knows.
func (s *Store) Migrate(ctx context.Context) error {
	if s.dialect == SQLite {
		fl := flock.New(s.path + ".migrate-lock")
		if err := fl.Lock(); err != nil {
			return fmt.Errorf("migrate: lock %s: %w", fl.Path(), err)
		}
		defer fl.Unlock()
	}
	p, err := s.provider()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := s.checkSchemaVersion(ctx, p); err != nil {
		return err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range res {
		s.log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration_ms", r.Duration.Milliseconds())
	}
	return nil
}

// LockServe takes the lock that lets one `flowgate serve` at a time use a
// SQLite database (its delivery leases assume that no other process holds
// any: see queue.ReleaseOrphanedLeases). It fails at once, naming the
// database, while another process holds it; the operating system releases
// it when the process ends, however it ends. On PostgreSQL, which any
// number of processes share, it does nothing.
func (s *Store) LockServe() (unlock func(), err error) {
	if s.dialect != SQLite {
		return func() {}, nil
	}
	fl := flock.New(s.path + ".serve-lock")
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", fl.Path(), err)
	}
	if !ok {
		return nil, fmt.Errorf("another flowgate serve is using %s: the embedded SQLite database serves one process (set DATABASE_URL to PostgreSQL for several)", s.path)
	}
	return func() { _ = fl.Unlock() }, nil
}

// SchemaStatus reports the database's schema version and the newest one
// this binary knows.
func (s *Store) SchemaStatus(ctx context.Context) (current, known int64, err error) {
	p, err := s.provider()
	if err != nil {
		return 0, 0, err
	}
	current, err = p.GetDBVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("schema version: %w", err)
	}
	for _, src := range p.ListSources() {
		known = max(known, src.Version)
	}
	return current, known, nil
}

func (s *Store) checkSchemaVersion(ctx context.Context, p *goose.Provider) error {
	current, err := p.GetDBVersion(ctx)
	if err != nil {
		// A fresh database has no version table yet; Up creates it.
		return nil
	}
	var known int64
	for _, src := range p.ListSources() {
		known = max(known, src.Version)
	}
	if current > known {
		return fmt.Errorf("migrate: the database schema is at version %d, newer than this flowgate knows (%d); run a newer flowgate", current, known)
	}
	return nil
}
