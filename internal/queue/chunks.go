package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/store"
)

// Large messages. Content up to ChunkSize is held in memory and committed
// with its message (message_bodies), the fast path. Beyond that, the relay
// writes the content into message_chunks as it reads it, in pieces of
// about ChunkSize that each end at a line end, keyed by the message's uid
// (a Spool), and commits the message itself, with the number of pieces,
// only when the last one is stored; delivery reads the pieces back one at
// a time. Neither side holds a large message whole, so memory stays
// bounded however large the messages and however many arrive at once.
// Pieces of a message that was refused are deleted at once; pieces left
// by a crash mid-message, and those of finished messages whose deletion
// failed, are deleted by the trace pruning (Prune) once a day old.
const ChunkSize = 256 << 10

// chunkOrphanAge is how old pieces of no waiting message must be before
// Prune deletes them.
const chunkOrphanAge = 24 * time.Hour

// Spool writes one message's content into the queue piece by piece, before
// the message is committed with Enqueue.
type Spool struct {
	sql    dialect
	uid    string
	chunks int
	size   int64
}

// Spool starts writing the content of the message uid.
func (w *Writer) Spool(uid string) *Spool { return &Spool{sql: w.sql, uid: uid} }

// Write stores the next piece durably. Every piece but the last must end
// with a line end (CRLF).
func (s *Spool) Write(ctx context.Context, piece []byte) error {
	if err := s.sql.putChunk(ctx, s.uid, s.chunks, Micros(time.Now()), piece); err != nil {
		return fmt.Errorf("store a piece of message %s: %w", s.uid, err)
	}
	s.chunks++
	s.size += int64(len(piece))
	return nil
}

// Chunks is how many pieces are stored, Size their total length.
func (s *Spool) Chunks() int { return s.chunks }
func (s *Spool) Size() int64 { return s.size }

// Discard deletes the pieces stored: the message was refused. A failure
// leaves them to Prune.
func (s *Spool) Discard() error {
	if s.chunks == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.sql.dropChunks(ctx, []string{s.uid})
}

// storedContent is a large message's content, read from the queue one
// piece at a time while it is delivered.
type storedContent struct {
	st     *store.Store
	uid    string
	chunks int
	size   int64
}

func (c storedContent) Size() int64 { return c.size }

func (c storedContent) Pieces(ctx context.Context, fn func([]byte) error) error {
	for seq := range c.chunks {
		data, err := c.piece(ctx, seq)
		if err != nil {
			return err
		}
		if err := fn(data); err != nil {
			return err
		}
	}
	return nil
}

func (c storedContent) piece(ctx context.Context, seq int) ([]byte, error) {
	var data []byte
	err := c.st.DB().WithContext(ctx).Raw("SELECT data FROM message_chunks WHERE uid = ? AND seq = ?", c.uid, seq).Row().Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("piece %d of message %s is missing from the queue", seq, c.uid)
	}
	if err != nil {
		return nil, fmt.Errorf("read piece %d of message %s: %w", seq, c.uid, err)
	}
	return data, nil
}

// content is what a job delivers: its body in memory, or its pieces.
func (j *job) content(st *store.Store) delivery.Content {
	if j.chunks > 0 {
		return storedContent{st: st, uid: j.msg.UID, chunks: j.chunks, size: j.msg.Size}
	}
	return delivery.Bytes(j.body)
}

// head is the start of a job's content, enough for a DSN's copy of the
// original header section.
func (j *job) head(ctx context.Context, st *store.Store) []byte {
	if j.chunks == 0 {
		return j.body
	}
	data, err := storedContent{st: st, uid: j.msg.UID, chunks: j.chunks}.piece(ctx, 0)
	if err != nil {
		return nil
	}
	return data
}

// countChunks fills in the pieces of the jobs that have no body in memory,
// when they add up to the message's size.
func countChunks(ctx context.Context, st *store.Store, jobs []*job) error {
	var uids []string
	byUID := map[string]*job{}
	for _, j := range jobs {
		if j.body == nil {
			uids = append(uids, j.msg.UID)
			byUID[j.msg.UID] = j
		}
	}
	if len(uids) == 0 {
		return nil
	}
	var rows []struct {
		UID  string
		N    int
		Size int64
	}
	if err := st.DB().WithContext(ctx).Raw("SELECT uid, COUNT(*) AS n, SUM(length(data)) AS size FROM message_chunks WHERE uid IN ? GROUP BY uid", uids).Scan(&rows).Error; err != nil {
		return fmt.Errorf("count pieces: %w", err)
	}
	for _, r := range rows {
		// Pieces that do not add up to the message's size are not its
		// content: the job is left without content, and bounced.
		if j := byUID[r.UID]; r.Size == j.msg.Size {
			j.chunks = r.N
		}
	}
	return nil
}

// The pieces' SQL is the same on both engines; on SQLite it takes the
// queue's turn to write (store.SQLiteWrites), like every queue write.
const (
	putChunkSQL    = "INSERT INTO message_chunks (uid, seq, at, data) VALUES (?, ?, ?, ?)"
	dropChunksSQL  = "DELETE FROM message_chunks WHERE uid IN ?"
	pruneChunksSQL = `DELETE FROM message_chunks WHERE at < ?
		AND uid NOT IN (SELECT uid FROM messages WHERE status IN ('queued', 'deferred'))`
)

func (q postgresQueue) putChunk(ctx context.Context, uid string, seq int, at int64, data []byte) error {
	return q.st.DB().WithContext(ctx).Exec(putChunkSQL, uid, seq, at, data).Error
}

func (q postgresQueue) dropChunks(ctx context.Context, uids []string) error {
	return q.st.BookkeepingDB().WithContext(ctx).Exec(dropChunksSQL, uids).Error
}

func (q postgresQueue) pruneChunks(ctx context.Context, before int64) (int64, error) {
	res := q.st.BookkeepingDB().WithContext(ctx).Exec(pruneChunksSQL, before)
	return res.RowsAffected, res.Error
}

func (q sqliteQueue) putChunk(ctx context.Context, uid string, seq int, at int64, data []byte) error {
	defer q.turn()()
	return q.st.DB().WithContext(ctx).Exec(putChunkSQL, uid, seq, at, data).Error
}

func (q sqliteQueue) dropChunks(ctx context.Context, uids []string) error {
	defer q.turn()()
	return q.st.DB().WithContext(ctx).Exec(dropChunksSQL, uids).Error
}

func (q sqliteQueue) pruneChunks(ctx context.Context, before int64) (int64, error) {
	defer q.turn()()
	res := q.st.DB().WithContext(ctx).Exec(pruneChunksSQL, before)
	return res.RowsAffected, res.Error
}
