// Package store is flowgate's persistence: one Store over gorm, on an
// embedded SQLite file (no DATABASE_URL) or on PostgreSQL. It owns the
// schema (numbered SQL migrations applied with goose under a lock), the
// repositories for connectors and their immutable revisions, accepted
// domains, users, API tokens and the audit log, and it maps database
// errors to ErrNotFound and *ConflictError in one place.
//
// Every change that the audit log records is written in the same
// transaction as its audit row.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names the database engine behind a Store.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// ErrNotFound is returned when a row does not exist (or was deleted).
var ErrNotFound = errors.New("not found")

// ConflictError is a change refused because of existing data: a duplicate
// name, an overlapping connector, a domain that is already accepted.
type ConflictError struct {
	Field   string
	Message string
}

func (e *ConflictError) Error() string { return e.Message }

// Options configure Open.
type Options struct {
	// DatabaseURL is postgres://… for PostgreSQL; empty for SQLite.
	DatabaseURL string
	// DataDir holds the SQLite file when DatabaseURL is empty.
	DataDir string
	Logger  *slog.Logger
}

// Store is the database. It is safe for concurrent use.
type Store struct {
	db      *gorm.DB
	dialect Dialect
	path    string // SQLite file, for the migration lock
	url     string // PostgreSQL URL, for LISTEN
	log     *slog.Logger
	changes changeHub

	leaseOnce sync.Once
	leaseDB   *gorm.DB // PostgreSQL: a pool with synchronous_commit off

	sqliteWrites sync.Mutex // see SQLiteWrites
}

// SQLiteFile is the name of the embedded database in the data directory.
const SQLiteFile = "flowgate.db"

// Open connects to the database named by opts. It does not migrate; call
// Migrate.
func Open(ctx context.Context, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg := &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	}
	s := &Store{log: log}
	var dialector gorm.Dialector
	switch u := opts.DatabaseURL; {
	case u == "":
		if opts.DataDir == "" {
			return nil, errors.New("open database: no DATABASE_URL and no data directory")
		}
		if err := os.MkdirAll(opts.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("open database: create data directory: %w", err)
		}
		s.dialect, s.path = SQLite, filepath.Join(opts.DataDir, SQLiteFile)
		if err := privateFiles(s.path); err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
		dialector = sqlite.Open(sqliteDSN(s.path))
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		s.dialect, s.url = Postgres, u
		dialector = postgres.Open(u)
	default:
		return nil, errors.New("open database: DATABASE_URL must start with postgres:// (or be empty for the embedded SQLite database)")
	}
	db, err := gorm.Open(dialector, cfg)
	// Processes opening a new SQLite database at the same moment may find
	// it locked while one of them switches it to WAL (SQLite answers
	// SQLITE_BUSY there without waiting): try again, briefly.
	for wait := 20 * time.Millisecond; err != nil && s.dialect == SQLite && sqliteBusy(err) && wait < 2*time.Second; wait *= 2 {
		time.Sleep(wait)
		db, err = gorm.Open(dialector, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", s.dialect, err)
	}
	s.db = db
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", s.dialect, err)
	}
	if s.dialect == SQLite {
		// One writer at a time is SQLite's model; a small pool keeps readers
		// concurrent under WAL without piling up busy writers.
		sqlDB.SetMaxOpenConns(8)
		sqlDB.SetMaxIdleConns(8)
	} else {
		// Keep as many idle connections as may be open: database/sql keeps
		// only 2 by default, so bursts would open (and TLS-handshake, and
		// re-prepare statements on) new connections all the time.
		sqlDB.SetMaxOpenConns(32)
		sqlDB.SetMaxIdleConns(32)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("connect to %s database: %w", s.dialect, err)
	}
	return s, nil
}

// privateFiles makes the SQLite database readable by its owner only
// (mail, password hashes, sessions): it creates the file with mode 0600
// before SQLite does (SQLite gives its -wal and -shm files the database
// file's mode) and narrows the mode of files an older flowgate created.
func privateFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// sqliteBusy reports a database that is locked for a moment.
func sqliteBusy(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked")
}

// sqliteDSN sets a busy timeout — first, so that switching a new database
// to WAL waits for another process doing the same instead of failing with
// SQLITE_BUSY — and turns on WAL, foreign keys and immediate write
// transactions (so two writers queue instead of failing on upgrade). The
// driver stops reading options after _time_format, so none is given.
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)&_txlock=immediate"
}

// SQLiteWrites is the turn of the queue's writers on SQLite, which takes
// one write transaction at a time. Without it, the writers wait for the
// database's lock in its busy handler, which polls: the relay's writer,
// always ready with the next batch, took the lock again and again while
// the delivery workers' claims and outcomes waited, and the backlog grew
// as long as mail kept arriving. Taken in turn (a sync.Mutex hands itself
// over in order to waiters that have waited over a millisecond),
// acceptance and delivery share the database, and acceptance slows down
// as delivery needs its share: back-pressure instead of a growing queue.
func (s *Store) SQLiteWrites() *sync.Mutex { return &s.sqliteWrites }

// Dialect returns the engine in use.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB returns the gorm handle, for packages that own their own tables.
func (s *Store) DB() *gorm.DB { return s.db }

// BookkeepingDB returns the handle for delivery bookkeeping: claiming
// messages (leases) and recording delivery outcomes. On PostgreSQL it is a
// second, small pool whose commits do not wait for the WAL flush
// (synchronous_commit=off): a PostgreSQL crash may forget the last fraction
// of a second of such commits, which means a lease or an outcome is lost
// and the message is delivered again — a duplicate, never a lost message.
// Accepting mail never uses it: a 250 always follows a synchronous commit.
// On SQLite it is the ordinary handle.
//
// The pool also runs with plan_cache_mode=force_generic_plan and
// enable_seqscan=off. Every statement on it finds its rows by key (message
// ids, the due-messages index, received_at), and its statements are
// prepared. Left to itself, PostgreSQL planned the outcome statement, which
// takes arrays of ids, afresh at every execution (it judged the plans made
// for each array cheaper than a generic one): 0.49 ms of planning per
// execution against 0.07 ms to bind a generic plan (docs/perf.md,
// "Changes tried"). Forced to a generic plan, it plans once — and on a new database,
// while the tables hold a few rows, that plan would seq-scan them and keep
// doing so as they grow until autovacuum analyses them (700 scans
// reading 860,000 rows in a 5,000-message run). With seq scans priced
// out the plan uses the indexes from the start; a statement with no index
// to use still runs.
func (s *Store) BookkeepingDB() *gorm.DB {
	if s.dialect != Postgres {
		return s.db
	}
	s.leaseOnce.Do(func() {
		sep := "?"
		if strings.Contains(s.url, "?") {
			sep = "&"
		}
		db, err := gorm.Open(postgres.Open(s.url+sep+"synchronous_commit=off&enable_seqscan=off&plan_cache_mode=force_generic_plan"), &gorm.Config{
			Logger: logger.Discard, SkipDefaultTransaction: true, NowFunc: s.db.Config.NowFunc,
		})
		if err != nil {
			s.log.Warn("bookkeeping pool unavailable; using the main pool", "err", err)
			return
		}
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.SetMaxOpenConns(8)
			sqlDB.SetMaxIdleConns(8)
			sqlDB.SetConnMaxIdleTime(5 * time.Minute)
		}
		s.leaseDB = db
	})
	if s.leaseDB == nil {
		return s.db
	}
	return s.leaseDB
}

// Close closes the connection pools.
func (s *Store) Close() error {
	if s.leaseDB != nil {
		if sqlDB, err := s.leaseDB.DB(); err == nil {
			_ = sqlDB.Close()
		}
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Transact runs fn in a transaction; it commits when fn returns nil and
// rolls back when fn returns an error or panics.
func (s *Store) Transact(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.db.WithContext(ctx).Transaction(fn)
}

// isUniqueViolation recognizes a unique constraint failure on either engine.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "SQLSTATE 23505") || strings.Contains(msg, "UNIQUE constraint failed")
}
