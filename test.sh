#!/usr/bin/env bash
# Runs every flowgate test: unit, store (SQLite and PostgreSQL), API and
# the real binary. PostgreSQL tests use $FLOWGATE_TEST_POSTGRES_URL
# (default: postgres://postgres@127.0.0.1:5432/postgres) and are skipped,
# with the notice printed first, when no server is reachable.
# Extra arguments go to `go test` (e.g. ./test.sh -run Store -v).
set -euo pipefail
cd "$(dirname "$0")"
go run ./internal/testutil/pgprobe
go test -count=1 -timeout 20m "$@" ./...
# The patched go-smtp (internal/third_party/go-smtp/FLOWGATE-PATCH.md) is its
# own module, so ./... above does not reach it: its own tests and the
# tests of the patch against upstream's code.
if [ $# -eq 0 ]; then
  (cd internal/third_party/go-smtp && go test -count=1 ./...)
fi
