package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Writable reports why the database cannot take writes now, or nil. On
// PostgreSQL: a server in recovery (a standby) or read-only. On SQLite:
// a directory whose file system is read-only, or has less than minFree
// bytes free (the relay needs room for a whole message before it may
// answer 250), found with a real write and fsync of a small file.
func (s *Store) Writable(ctx context.Context, minFree int64) error {
	if s.dialect == Postgres {
		var readOnly string
		var recovery bool
		if err := s.db.WithContext(ctx).Raw("SELECT current_setting('transaction_read_only'), pg_is_in_recovery()").Row().Scan(&readOnly, &recovery); err != nil {
			return fmt.Errorf("database unreachable: %w", err)
		}
		if readOnly == "on" || recovery {
			return errors.New("database is read-only (a standby, or transaction_read_only is on)")
		}
		return nil
	}
	dir := filepath.Dir(s.path)
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	if free := int64(fs.Bavail) * int64(fs.Bsize); free < minFree {
		return fmt.Errorf("data directory %s is full: %d bytes free, a message may need %d", dir, free, minFree)
	}
	f, err := os.CreateTemp(dir, ".writable-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write([]byte("ok\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, err)
	}
	return nil
}
