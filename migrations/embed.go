// Package migrations holds flowgate's numbered SQL migrations, one set per
// database dialect, embedded in the binary and applied with goose by
// `flowgate migrate` and at `flowgate serve` start.
package migrations

import "embed"

// Postgres holds the PostgreSQL migrations under postgres/.
//
//go:embed postgres/*.sql
var Postgres embed.FS

// SQLite holds the SQLite migrations under sqlite/.
//
//go:embed sqlite/*.sql
var SQLite embed.FS
