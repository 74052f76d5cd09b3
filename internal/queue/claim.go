package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// claim leases up to n due messages to this process and loads them, in
// three statements for the whole batch.
func (wk *Workers) claim(ctx context.Context, n int) ([]*job, error) {
	now := Micros(time.Now())
	until := Micros(time.Now().Add(wk.cfg.Lease))
	rows, err := wk.sql.claim(ctx, wk.owner, now, until, n)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	wk.claimed.Add(int64(len(rows)))
	return wk.load(ctx, rows)
}

// load registers claimed messages as in flight and loads their
// recipients and content, in three statements for the whole batch.
func (wk *Workers) load(ctx context.Context, rows []messageRow) ([]*job, error) {
	ids := make([]int64, len(rows))
	jobs := make(map[int64]*job, len(rows))
	out := make([]*job, len(rows))
	wk.mu.Lock()
	for i := range rows {
		ids[i] = rows[i].ID
		out[i] = &job{msg: rows[i]}
		jobs[rows[i].ID] = out[i]
		wk.inFlight[rows[i].ID] = true
	}
	wk.mu.Unlock()
	db := wk.st.DB().WithContext(ctx)
	var rcpts []*recipientRow
	if err := db.Where("message_id IN ?", ids).Order("id").Find(&rcpts).Error; err != nil {
		wk.forget(ids)
		return nil, fmt.Errorf("load recipients: %w", err)
	}
	for _, r := range rcpts {
		jobs[r.MessageID].rcpts = append(jobs[r.MessageID].rcpts, r)
	}
	var bodies []bodyRow
	if err := db.Where("message_id IN ?", ids).Find(&bodies).Error; err != nil {
		wk.forget(ids)
		return nil, fmt.Errorf("load bodies: %w", err)
	}
	for i := range bodies {
		jobs[bodies[i].MessageID].body = bodies[i].Data
	}
	if err := countChunks(ctx, wk.st, out); err != nil {
		wk.forget(ids)
		return nil, err
	}
	return out, nil
}

func (wk *Workers) forget(ids []int64) {
	for _, id := range ids {
		wk.done(id)
	}
}

// renew extends the leases of messages being delivered.
func (wk *Workers) renew() {
	wk.mu.Lock()
	ids := make([]int64, 0, len(wk.inFlight))
	for id := range wk.inFlight {
		ids = append(ids, id)
	}
	wk.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	until := Micros(time.Now().Add(wk.cfg.Lease))
	err := wk.st.BookkeepingDB().Exec("UPDATE messages SET lease_until = ? WHERE lease_owner = ? AND id IN ?", until, wk.owner, ids).Error
	if err != nil {
		wk.log.Warn("renew leases", "err", err)
	}
}

// release gives back every claim this process holds, for others to take.
func (wk *Workers) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := wk.st.DB().WithContext(ctx).Exec("UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?", wk.owner).Error; err != nil {
		wk.log.Warn("release leases", "err", err)
	}
}

// ReleaseOrphanedLeases releases, at start, the delivery leases that a
// previous run left behind. On SQLite (call it only while holding
// store.LockServe) that is every lease: one process serves the database,
// so any lease found then belongs to a process that ended without
// releasing it (killed, or the machine went down), and its messages are
// delivered now rather than when the lease would run out. On PostgreSQL
// it does nothing: liveness (liveness.go) releases the leases of processes
// that are gone.
func ReleaseOrphanedLeases(ctx context.Context, st *store.Store) (int64, error) {
	n, err := dialectFor(st).releaseOrphans(ctx)
	if err != nil {
		return 0, fmt.Errorf("release orphaned leases: %w", err)
	}
	return n, nil
}
