package queue

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/flowgate/flowgate/internal/store"
)

// acceptPostgres is the whole batch as one statement: the messages, their
// bodies, recipients and trace events are inserted by data-modifying CTEs
// of one INSERT, which PostgreSQL runs as its own transaction (autocommit;
// a statement is atomic) and commits durably before it answers. Run
// without BEGIN, it is one round trip to the server (the extended
// protocol: Bind, Execute, Sync), where the transaction of insertBatch
// takes six (BEGIN, four INSERTs, COMMIT).
//
// The rows travel as one array per column and are expanded with unnest, so
// the statement text is the same for every batch: it is prepared once per
// connection and reused (a text that changed with the batch's shape would
// be prepared again, one more round trip, for most batches), and no batch
// comes near PostgreSQL's 65535 parameters (the statement has 42). The
// bodies travel as one bytea, the bodies back to back, with each body's
// offset and length; it is the last parameter, so that acceptDirect can
// send the bodies straight from the relay's slices at the end of the Bind
// message (through pgx, a bytea[] was copied over and over as pgx's
// buffers grew). Bodies, recipients and events are joined to their
// message by its uid, which is unique; ORDER BY the position in the batch
// keeps their ids (and so the order of the trace) as insertBatch gives
// them. It answers each message's uid and id and its recipients' ids, for
// the messages this process delivers itself (leased to $33 until $34).
const acceptPostgres = `WITH m AS (
	INSERT INTO messages (uid, received_at, status, client_ip, helo, tls_version, tls_cipher, client_cert, sender,
		message_id_header, size, inbound_connector_id, inbound_connector, inbound_revision, attribution, reply,
		next_attempt_at, expires_at, lease_owner, lease_until, updated_at)
	SELECT uid, received_at, status, client_ip, helo, tls_version, tls_cipher, client_cert, sender,
		message_id_header, size, inbound_connector_id, inbound_connector, inbound_revision, attribution, reply,
		next_attempt_at, expires_at, CASE WHEN leased THEN $33::text END, CASE WHEN leased THEN $34::bigint END, $1
	FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
		$10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::text[], $15::integer[], $16::text[], $17::text[],
		$18::bigint[], $19::bigint[], $35::boolean[])
		WITH ORDINALITY AS v(uid, received_at, status, client_ip, helo, tls_version, tls_cipher, client_cert, sender,
			message_id_header, size, inbound_connector_id, inbound_connector, inbound_revision, attribution, reply,
			next_attempt_at, expires_at, leased, ord)
	ORDER BY ord
	RETURNING id, uid
), b AS (
	INSERT INTO message_bodies (message_id, data)
	SELECT m.id, substring($42::bytea FROM v.off + 1 FOR v.len)
	FROM unnest($20::text[], $21::integer[], $36::integer[]) AS v(uid, off, len) JOIN m ON m.uid = v.uid
), h AS (
	INSERT INTO message_headers (message_id, section)
	SELECT m.id, v.section FROM unnest($40::text[], $41::text[]) AS v(uid, section) JOIN m ON m.uid = v.uid
), r AS (
	INSERT INTO message_recipients (message_id, address, status, connector_id, connector, route_reason, last_reply, updated_at,
		rule, rule_connector_id, rule_on_error)
	SELECT m.id, v.address, v.status, v.connector_id, v.connector, v.route_reason, v.last_reply, $1,
		v.rule, v.rule_connector_id, v.rule_on_error
	FROM unnest($22::text[], $23::text[], $24::text[], $25::bigint[], $26::text[], $27::text[], $28::text[],
		$37::text[], $38::bigint[], $39::text[])
		WITH ORDINALITY AS v(uid, address, status, connector_id, connector, route_reason, last_reply,
			rule, rule_connector_id, rule_on_error, ord)
	JOIN m ON m.uid = v.uid
	ORDER BY v.ord
	RETURNING id, message_id
), e AS (
	INSERT INTO message_events (message_id, at, type, detail)
	SELECT m.id, v.at, v.type, v.detail
	FROM unnest($29::text[], $30::bigint[], $31::text[], $32::text[]) WITH ORDINALITY AS v(uid, at, type, detail, ord)
	JOIN m ON m.uid = v.uid
	ORDER BY v.ord
)
SELECT m.uid, m.id, array_to_string(ARRAY(SELECT r.id FROM r WHERE r.message_id = m.id ORDER BY r.id), ',') FROM m`

// bodyBuffers recycles the buffer execAccept concatenates a batch's bodies
// into; pgx has copied it into its own write buffer by the time the query
// returns.
var bodyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// postgresQueue is the queue's SQL for PostgreSQL, which several
// processes may share: every statement is a round trip, so each step is
// one statement where it can be (data-modifying CTEs over arrays), and
// claims lock with SKIP LOCKED so that processes never wait for each
// other's rows.
type postgresQueue struct{ st *store.Store }

// accept commits a batch with acceptPostgres: the same rows as
// insertBatch, in one autocommitted statement, sent by acceptDirect.
func (q postgresQueue) accept(ctx context.Context, batch []request, ls *lease) error {
	sqlDB, err := q.st.DB().DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("insert messages: unexpected driver connection %T", dc)
		}
		return acceptDirect(ctx, c.Conn(), batch, ls)
	})
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (q postgresQueue) claim(ctx context.Context, owner string, now, until int64, n int) ([]messageRow, error) {
	var rows []messageRow
	err := q.st.BookkeepingDB().WithContext(ctx).Raw(claimStatement("FOR UPDATE SKIP LOCKED"), owner, until, now, now, n).Scan(&rows).Error
	return rows, err
}

// prune deletes a batch of finished messages received before cutoff, and
// their children (which have no foreign keys here: migration 00007), in
// one statement; rows another process holds are skipped.
func (q postgresQueue) prune(ctx context.Context, cutoff int64, batch int) (int64, error) {
	res := q.st.BookkeepingDB().WithContext(ctx).Exec(`WITH doomed AS (
			SELECT id FROM messages WHERE received_at < ? AND status IN ('delivered', 'bounced', 'rejected')
			ORDER BY received_at LIMIT ? FOR UPDATE SKIP LOCKED
		), b AS (
			DELETE FROM message_bodies WHERE message_id IN (SELECT id FROM doomed)
		), r AS (
			DELETE FROM message_recipients WHERE message_id IN (SELECT id FROM doomed)
		), e AS (
			DELETE FROM message_events WHERE message_id IN (SELECT id FROM doomed)
		), h AS (
			DELETE FROM message_headers WHERE message_id IN (SELECT id FROM doomed)
		)
		DELETE FROM messages WHERE id IN (SELECT id FROM doomed)`, cutoff, batch)
	return res.RowsAffected, res.Error
}

// releaseOrphans does nothing at start on PostgreSQL: other processes may
// hold the leases, and the leases of processes that are gone are released
// once this one proves itself alive (watchOwners).
func (postgresQueue) releaseOrphans(context.Context) (int64, error) { return 0, nil }

// execAccept runs acceptPostgres for a batch through database/sql (inside
// a transaction: the DSNs of postgresQueue.record) and fills in the ids of the
// requests.
func execAccept(ctx context.Context, db querier, batch []request, ls *lease) error {
	args, bodies, bodyBytes := acceptArgs(batch, ls)
	bodiesp := bodyBuffers.Get().(*[]byte)
	defer bodyBuffers.Put(bodiesp)
	all := slices.Grow((*bodiesp)[:0], bodyBytes)
	for _, b := range bodies {
		all = append(all, b...)
	}
	*bodiesp = all
	rows, err := db.QueryContext(ctx, acceptPostgres, append(args, all)...)
	if err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	defer rows.Close()
	ids := newAcceptedIDs(batch)
	for rows.Next() {
		var u, list string
		var id int64
		if err := rows.Scan(&u, &id, &list); err != nil {
			return fmt.Errorf("insert messages: %w", err)
		}
		if err := ids.set(u, id, list); err != nil {
			return fmt.Errorf("insert messages: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	if err := ids.complete(); err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	return nil
}

// acceptArgs are the arguments $1 to $41 of acceptPostgres for a batch, and
// the bodies that make up $42, in order, with their total length.
func acceptArgs(batch []request, ls *lease) (args []any, bodies [][]byte, bodyBytes int) {
	now := Micros(time.Now())
	n := len(batch)
	var (
		uid, status, clientIP, helo, tlsVersion, tlsCipher, clientCert, sender = make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		msgIDHeader, inConnector, attribution, reply = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		receivedAt, size                             = make([]int64, n), make([]int64, n)
		inConnectorID, nextAttempt, expires          = make([]*int64, n), make([]*int64, n), make([]*int64, n)
		inRevision                                   = make([]*int32, n)
		leased                                       = make([]bool, n)

		bodyUID          = []string{}
		bodyOff, bodyLen = []int32{}, []int32{}

		rUID, rAddress, rStatus, rConnector, rReason, rReply = []string{}, []string{}, []string{}, []string{}, []string{}, []string{}
		rConnectorID                                         = []*int64{}
		rRule, rRuleOnError                                  = []string{}, []string{}
		rRuleConnectorID                                     = []*int64{}

		hUID, hSection = []string{}, []string{}

		eUID, eType, eDetail = []string{}, []string{}, []string{}
		eAt                  = []int64{}
	)
	// Empty slices, not nil: pgx encodes a nil slice as NULL, and
	// unnest(NULL) as no rows; empty slices say "no rows" plainly.
	for i := range batch {
		m := batch[i].m
		m.clean()
		// The message's columns as insertBatch writes them (request.row);
		// the lease itself is $33/$34, one for the whole batch.
		row := batch[i].row(now, ls)
		uid[i], status[i], clientIP[i], helo[i] = row.UID, string(row.Status), row.ClientIP, row.Helo
		tlsVersion[i], tlsCipher[i], clientCert[i], sender[i] = row.TLSVersion, row.TLSCipher, row.ClientCert, row.Sender
		msgIDHeader[i], inConnector[i], attribution[i], reply[i] = row.MessageIDHeader, row.InboundConnector, row.Attribution, row.Reply
		receivedAt[i], size[i], inConnectorID[i] = row.ReceivedAt, row.Size, row.InboundConnectorID
		if row.InboundRevision != nil {
			rev := int32(*row.InboundRevision)
			inRevision[i] = &rev
		}
		nextAttempt[i], expires[i], leased[i] = row.NextAttemptAt, row.ExpiresAt, row.LeaseOwner != nil
		if m.Body != nil {
			bodyUID = append(bodyUID, m.UID)
			bodyOff, bodyLen = append(bodyOff, int32(bodyBytes)), append(bodyLen, int32(len(m.Body)))
			bodyBytes += len(m.Body)
			bodies = append(bodies, m.Body)
		}
		for _, rc := range m.Recipients {
			rUID, rAddress, rStatus = append(rUID, m.UID), append(rAddress, rc.Address), append(rStatus, string(rc.Status))
			rConnectorID, rConnector = append(rConnectorID, rc.ConnectorID), append(rConnector, rc.Connector)
			rReason, rReply = append(rReason, rc.RouteReason), append(rReply, rc.LastReply)
			rRule, rRuleConnectorID, rRuleOnError = append(rRule, rc.Rule.Rule), append(rRuleConnectorID, rc.Rule.ConnectorID), append(rRuleOnError, rc.Rule.OnError)
		}
		if m.Header != nil {
			hUID, hSection = append(hUID, m.UID), append(hSection, headerText(m.Header))
		}
		for _, e := range m.Events {
			eUID, eAt, eType, eDetail = append(eUID, m.UID), append(eAt, Micros(e.At)), append(eType, e.Type), append(eDetail, e.Detail)
		}
	}
	var owner string
	var until int64
	if ls != nil {
		owner, until = ls.owner, ls.until
	}
	args = []any{now,
		uid, receivedAt, status, clientIP, helo, tlsVersion, tlsCipher, clientCert, sender,
		msgIDHeader, size, inConnectorID, inConnector, inRevision, attribution, reply, nextAttempt, expires,
		bodyUID, bodyOff,
		rUID, rAddress, rStatus, rConnectorID, rConnector, rReason, rReply,
		eUID, eAt, eType, eDetail,
		owner, until, leased, bodyLen,
		rRule, rRuleConnectorID, rRuleOnError,
		hUID, hSection}
	return args, bodies, bodyBytes
}

// acceptedIDs fills in the ids acceptPostgres answers, one row per message:
// its uid, its id and its recipients' ids. Its errors are the caller's to
// wrap.
type acceptedIDs struct {
	byUID     map[string]*request
	got, want int
}

func newAcceptedIDs(batch []request) *acceptedIDs {
	a := &acceptedIDs{byUID: make(map[string]*request, len(batch)), want: len(batch)}
	for i := range batch {
		a.byUID[batch[i].m.UID] = &batch[i]
	}
	return a
}

func (a *acceptedIDs) set(uid string, id int64, list string) error {
	rcptIDs, err := parseIDs(list)
	if err != nil {
		return err
	}
	r := a.byUID[uid]
	if r == nil || len(rcptIDs) != len(r.m.Recipients) {
		return fmt.Errorf("unexpected ids returned for %q", uid)
	}
	r.id, r.rcptIDs = id, rcptIDs
	a.got++
	return nil
}

func (a *acceptedIDs) complete() error {
	if a.got != a.want {
		return fmt.Errorf("%d of %d ids returned", a.got, a.want)
	}
	return nil
}

// parseIDs parses a comma-separated list of ids ("" is none).
func parseIDs(list string) ([]int64, error) {
	if list == "" {
		return []int64{}, nil
	}
	parts := strings.Split(list, ",")
	ids := make([]int64, len(parts))
	for i, p := range parts {
		id, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("recipient id %q: %w", p, err)
		}
		ids[i] = id
	}
	return ids, nil
}
