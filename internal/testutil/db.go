// Package testutil provides real, throwaway infrastructure for tests: a
// fresh SQLite file or a fresh PostgreSQL database per test.
package testutil

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flowgate/flowgate/internal/store"
)

// PostgresURLEnv names the variable with the server tests create their
// databases on; the default is the local server with trust auth.
const PostgresURLEnv = "FLOWGATE_TEST_POSTGRES_URL"

// RequirePostgresEnv, when "1", makes an unreachable PostgreSQL a test
// failure instead of a skip (CI sets it).
const RequirePostgresEnv = "FLOWGATE_TEST_REQUIRE_POSTGRES"

// DefaultPostgresURL is used when PostgresURLEnv is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// PostgresAdminURL returns the URL of the server for test databases.
func PostgresAdminURL() string {
	if u := os.Getenv(PostgresURLEnv); u != "" {
		return u
	}
	return DefaultPostgresURL
}

var pgReach struct {
	once sync.Once
	err  error
}

// PostgresReachable reports whether the test server answers, once per
// test binary.
func PostgresReachable() error {
	pgReach.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, PostgresAdminURL())
		if err != nil {
			pgReach.err = err
			return
		}
		pgReach.err = conn.Close(ctx)
	})
	return pgReach.err
}

// SkipWithoutPostgres skips the test (or fails it when CI requires
// PostgreSQL) if no server is reachable.
func SkipWithoutPostgres(t testing.TB) {
	t.Helper()
	if err := PostgresReachable(); err != nil {
		if os.Getenv(RequirePostgresEnv) == "1" {
			t.Fatalf("PostgreSQL required (%s=1) but not reachable at %s: %v", RequirePostgresEnv, PostgresAdminURL(), err)
		}
		t.Skipf("SKIP PostgreSQL tests: no server reachable at %s (%v); set %s to point at one", PostgresAdminURL(), err, PostgresURLEnv)
	}
}

// PostgresDatabase creates an empty database for the test, drops it at the
// end, and returns its URL.
func PostgresDatabase(t testing.TB) string {
	t.Helper()
	SkipWithoutPostgres(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "flowgate_test_" + hex.EncodeToString(b[:])
	admin := PostgresAdminURL()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresURLEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Engine is a database engine a test runs against.
type Engine struct {
	Name string
	// Open returns the options for a fresh, empty database.
	Options func(t testing.TB) store.Options
}

// Engines lists SQLite and PostgreSQL.
var Engines = []Engine{
	{Name: "sqlite", Options: func(t testing.TB) store.Options { return store.Options{DataDir: t.TempDir()} }},
	{Name: "postgres", Options: func(t testing.TB) store.Options { return store.Options{DatabaseURL: PostgresDatabase(t)} }},
}

// OpenStore opens and migrates a fresh store on the engine.
func OpenStore(t testing.TB, e Engine) *store.Store {
	t.Helper()
	return OpenStoreWith(t, e.Options(t))
}

// OpenStoreWith opens and migrates a store with the given options, closing
// it at the end of the test.
func OpenStoreWith(t testing.TB, opts store.Options) *store.Store {
	t.Helper()
	ctx := context.Background()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

// ForEachEngine runs fn as a subtest on a fresh store of each engine.
func ForEachEngine(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	for _, e := range Engines {
		t.Run(e.Name, func(t *testing.T) {
			fn(t, OpenStore(t, e))
		})
	}
}

// RawDB opens a plain database/sql handle on the same database as s.
func RawDB(t testing.TB, s *store.Store) *sql.DB {
	t.Helper()
	db, err := s.DB().DB()
	if err != nil {
		t.Fatal(err)
	}
	return db
}
