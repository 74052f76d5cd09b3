package queue

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestDatabaseAway: which errors keep recordBatch retrying for up to half
// a lease (the database is away) and which end it after three attempts.
func TestDatabaseAway(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"server shutting down (57P01)", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot connect now (57P03)", fmt.Errorf("record outcomes: %w", &pgconn.PgError{Code: "57P03"}), true},
		{"connection failure (08006)", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections (53300)", &pgconn.PgError{Code: "53300"}, true},
		{"unique violation (23505)", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error (42601)", fmt.Errorf("record outcomes: %w", &pgconn.PgError{Code: "42601"}), false},
		{"connection refused", fmt.Errorf("record outcomes: %w", refused), true},
		{"connection lost mid-answer", fmt.Errorf("record outcomes: %w", io.ErrUnexpectedEOF), true},
		{"some other error", errors.New("encode parameter: bad value"), false},
	} {
		if got := databaseAway(tc.err); got != tc.want {
			t.Errorf("%s: databaseAway(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
