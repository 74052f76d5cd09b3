package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// acceptStatement is the name acceptPostgres is prepared under on each
// connection that runs acceptDirect.
const acceptStatement = "flowgate_accept"

// bindBuffers recycles the buffer acceptDirect encodes a Bind message's
// parameters into (all but the bodies).
var bindBuffers = sync.Pool{New: func() any { return new([]byte) }}

// acceptDirect runs acceptPostgres for a batch on c and fills in the ids of
// the requests, like execAccept, but writes the statement's Bind, Execute
// and Sync messages to the connection itself, with the bodies as they are.
//
// Through pgx, each body would be copied three times before it reaches the
// socket — into our one bytea, into pgx's parameter buffer and into its
// write buffer, the last two grown by doubling from a few hundred bytes for
// every batch and then dropped — which with 100 KiB messages made copying,
// allocating, zeroing and collecting those buffers a fifth of flowgate's
// CPU (docs/perf.md). Here the parameters other than the bodies are encoded
// by pgx's own type map into a recycled buffer, and the bodies go to the
// socket from where the relay read them, with one writev. The statement is
// prepared through pgx (which remembers it for the connection), and the
// replies are read with pgx's ReceiveMessage, so pgx's own handling of
// notices and errors applies. Anything that leaves the connection in an
// unknown state — a failed or interrupted write or read — closes it, and
// database/sql discards it.
func acceptDirect(ctx context.Context, c *pgx.Conn, batch []request, ls *lease) error {
	sd, err := c.Prepare(ctx, acceptStatement, acceptPostgres)
	if err != nil {
		return fmt.Errorf("insert messages: prepare: %w", err)
	}
	args, bodies, bodyBytes := acceptArgs(batch, ls)
	if len(sd.ParamOIDs) != len(args)+1 {
		return fmt.Errorf("insert messages: statement has %d parameters, want %d", len(sd.ParamOIDs), len(args)+1)
	}
	bp := bindBuffers.Get().(*[]byte)
	defer bindBuffers.Put(bp)
	head, err := encodeBind(c, sd, args, bodyBytes, (*bp)[:0])
	*bp = head[:0]
	if err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	msgs := make(net.Buffers, 0, len(bodies)+2)
	msgs = append(msgs, head)
	for _, b := range bodies {
		if len(b) > 0 {
			msgs = append(msgs, b)
		}
	}
	msgs = append(msgs, bindExecuteSync)

	pc := c.PgConn()
	if err := pc.SyncConn(ctx); err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	nc := pc.Conn()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetWriteDeadline(dl)
		defer nc.SetWriteDeadline(time.Time{})
	}
	if _, err := msgs.WriteTo(nc); err != nil {
		closeBroken(pc)
		return fmt.Errorf("insert messages: %w", err)
	}

	ids := newAcceptedIDs(batch)
	var stmtErr error
	for {
		msg, err := pc.ReceiveMessage(ctx)
		if err != nil {
			closeBroken(pc)
			if stmtErr != nil { // a fatal error ends the connection: report it, not the closing
				return fmt.Errorf("insert messages: %w", stmtErr)
			}
			return fmt.Errorf("insert messages: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.DataRow:
			if stmtErr == nil {
				stmtErr = setIDs(ids, msg.Values)
			}
		case *pgproto3.ErrorResponse:
			if stmtErr == nil {
				stmtErr = pgconn.ErrorResponseToPgError(msg)
			}
		case *pgproto3.ReadyForQuery:
			if stmtErr != nil {
				var pgErr *pgconn.PgError
				if errors.As(stmtErr, &pgErr) && pgErr.Code == "26000" {
					// The server no longer has the statement (DISCARD
					// ALL, say): let pgx forget it too, so the retry
					// prepares it again.
					_ = c.Deallocate(ctx, acceptStatement)
				}
				return fmt.Errorf("insert messages: %w", stmtErr)
			}
			if err := ids.complete(); err != nil {
				return fmt.Errorf("insert messages: %w", err)
			}
			return nil
		}
	}
}

// bindExecuteSync ends the Bind message of encodeBind — one result format
// code, text — and adds Execute (the unnamed portal, all rows) and Sync.
var bindExecuteSync = []byte{
	0, 1, 0, 0,
	'E', 0, 0, 0, 9, 0, 0, 0, 0, 0,
	'S', 0, 0, 0, 4,
}

// encodeBind appends to buf a Bind message of the prepared statement sd —
// the unnamed portal, args as $1 … $n encoded by pgx's type map in the
// format pgx would use, and a last bytea parameter of bodyBytes bytes —
// up to the start of that parameter's value. The value (the bodies) and
// bindExecuteSync follow it on the wire.
func encodeBind(c *pgx.Conn, sd *pgconn.StatementDescription, args []any, bodyBytes int, buf []byte) ([]byte, error) {
	m := c.TypeMap()
	n := len(sd.ParamOIDs)
	buf = append(buf, 'B', 0, 0, 0, 0, 0) // type, length (below), unnamed portal
	buf = append(buf, acceptStatement...)
	buf = append(buf, 0)
	buf = binary.BigEndian.AppendUint16(buf, uint16(n))
	formats := make([]int16, n)
	for i, oid := range sd.ParamOIDs {
		formats[i] = m.FormatCodeForOID(oid)
		if i == n-1 {
			formats[i] = pgx.BinaryFormatCode // the raw bytes of the bodies
		}
		buf = binary.BigEndian.AppendUint16(buf, uint16(formats[i]))
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(n))
	for i, arg := range args {
		at := len(buf)
		buf = append(buf, 0, 0, 0, 0)
		out, err := m.Encode(sd.ParamOIDs[i], formats[i], arg, buf)
		if err != nil {
			return buf, fmt.Errorf("parameter $%d: %w", i+1, err)
		}
		if out == nil { // NULL
			binary.BigEndian.PutUint32(buf[at:], math.MaxUint32)
			continue
		}
		buf = out
		binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4))
	}
	buf = binary.BigEndian.AppendUint32(buf, uint32(bodyBytes))
	size := len(buf) - 1 + bodyBytes + 4 // without the type byte; with the result format codes
	if size > math.MaxInt32 {
		return buf, fmt.Errorf("batch of %d bytes too large for one message", size)
	}
	binary.BigEndian.PutUint32(buf[1:], uint32(size))
	return buf, nil
}

// setIDs takes one row of acceptPostgres's answer, in text format.
func setIDs(ids *acceptedIDs, values [][]byte) error {
	if len(values) != 3 {
		return fmt.Errorf("%d columns returned, want 3", len(values))
	}
	id, err := strconv.ParseInt(string(values[1]), 10, 64)
	if err != nil {
		return fmt.Errorf("message id %q: %w", values[1], err)
	}
	return ids.set(string(values[0]), id, string(values[2]))
}

// closeBroken closes a connection left in an unknown state, so that
// database/sql discards it instead of reusing it.
func closeBroken(pc *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = pc.Close(ctx)
}
