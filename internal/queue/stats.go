package queue

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/flowgate/flowgate/internal/store"
)

// Connector statistics (the connector page's live view, SPEC 4).
//
// Why a rollup. The page shows each connector's mail per hour for the
// last 24 hours by outcome, the share delivered over TLS, the delivery
// latency (median, p95), and the last success and failure. Computed from
// the trace, every view would read every recipient row of the day — a
// million rows on a busy gateway, seconds per page, growing with the
// traffic — and message_recipients has no index by connector and time
// (one would cost every accepted recipient an index entry, on the hot
// path, to serve a page read now and then). Instead the delivery workers
// add to a small rollup, connector_hourly (migration 00013): one counter
// per connector, hour and kind, upserted in the same statement (on
// PostgreSQL: two more CTEs of outcomesPostgres; on SQLite: in the same
// transaction) that records the outcomes, so the counters are exactly
// what the trace records, committed or lost together. The batch is
// aggregated here first (a record of 128 outcomes touches a handful of
// counters), and its keys are sorted, so that two processes recording at
// once lock the shared counter rows in the same order and never deadlock.
// The page then reads at most 24 hours × a few kinds of rows per
// connector, through the primary key: its cost does not depend on the
// trace's size (docs/perf.md, "Connector live view"). The price is about
// 0.1 ms per record statement (a few µs per message at the batch sizes
// of a busy relay), measured there too.
//
// What is counted, per connector — the recipient's outbound connector
// (its route this pass) and the message's inbound connector, so both
// directions get a chart — and per hour of the record:
//   - delivered, bounced: a recipient that reached that state in a
//     delivery pass (a lifetime expiry is a bounce);
//   - deferred: a recipient a pass attempted and deferred (each deferral
//     counts; a recipient only postponed for a busy destination does not);
//   - tls: a delivered recipient whose delivery went over TLS;
//   - lat:<ms>: delivered recipients by time from receipt to the record
//     of their delivery, in log-scale buckets (latencyBounds), so the
//     median and p95 are approximate to their bucket;
//   - rejected (inbound connectors): messages refused at the relay, by
//     hour of receipt. They never reach the delivery workers, and the
//     relay's trace path is left as it is: they are counted from the
//     partial index messages_rejected_inbound, which only rejected
//     messages are entered in, so accepted mail pays nothing for it. An
//     hour that is over is counted once and its count kept in the rollup
//     (kind "rejected", written by the first view that needs it:
//     rejections in stats_read.go), so a view counts only the last hour
//     or so from the index, however much mail a gateway refuses.
//
// connector_last keeps the newest delivered recipient (success) and the
// newest deferred or bounced one (failure) per connector with its reply;
// an inbound connector's newest rejected message, from the same partial
// index, counts as a failure too. The rollup keeps a week (statsKeep),
// pruned with the trace (Prune).

const (
	hourMicros = int64(time.Hour / time.Microsecond)
	// StatsHours is how many hours the live view shows, the current one last.
	StatsHours = 24
	// statsKeep is how long rollup rows are kept (Prune deletes older ones).
	statsKeep = 7 * 24 * time.Hour
)

// latencyBounds are the upper bounds of the latency histogram's buckets,
// roughly log-scale (1–2–5, then round units); a last, open bucket holds
// what took longer than the last bound.
var latencyBounds = []time.Duration{
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 48 * time.Hour,
}

const latencyPrefix = "lat:"

// latencyKind is the rollup kind of a latency: "lat:<upper bound in ms>",
// or "lat:inf" beyond the last bound.
func latencyKind(d time.Duration) string {
	for _, b := range latencyBounds {
		if d < b {
			return latencyPrefix + strconv.FormatInt(b.Milliseconds(), 10)
		}
	}
	return latencyPrefix + "inf"
}

// hourStart is the start of the hour of t (Unix microseconds, UTC).
func hourStart(us int64) int64 { return us - ((us%hourMicros)+hourMicros)%hourMicros }

// statKey is one counter of the rollup.
type statKey struct {
	connector, hour int64
	kind            string
}

// lastRow is a connector's newest success or failure.
type lastRow struct {
	connector           int64
	kind                string // success, failure
	at                  int64
	status              Status
	address, uid, reply string
}

// batchStats is what a batch of outcomes adds to the rollup, aggregated
// and sorted by key.
type batchStats struct {
	keys   []statKey
	counts []int64
	last   []lastRow
}

// statsOf aggregates a batch of outcomes recorded at now (Unix
// microseconds) into rollup counters and last rows.
func statsOf(batch []*outcome, now int64) batchStats {
	hour := hourStart(now)
	counts := map[statKey]int64{}
	type lastKey struct {
		connector int64
		kind      string
	}
	last := map[lastKey]lastRow{}
	for _, o := range batch {
		for _, rc := range o.rcpts {
			var kind, lastKind string
			switch {
			case rc.Status == Delivered:
				kind, lastKind = string(Delivered), "success"
			case rc.Status == Bounced:
				kind, lastKind = string(Bounced), "failure"
			case rc.Status == Deferred && rc.reply.Code != 0:
				// Attempted (or found without a route) in this pass;
				// a deferred recipient this pass only postponed keeps
				// the zero reply it was loaded with.
				kind, lastKind = string(Deferred), "failure"
			default:
				continue
			}
			for _, conn := range [2]*int64{rc.ConnectorID, o.msg.InboundConnectorID} {
				if conn == nil {
					continue
				}
				id := *conn
				counts[statKey{id, hour, kind}]++
				if kind == string(Delivered) {
					if rc.viaTLS {
						counts[statKey{id, hour, "tls"}]++
					}
					lat := time.Duration(max(0, now-o.msg.ReceivedAt)) * time.Microsecond
					counts[statKey{id, hour, latencyKind(lat)}]++
				}
				last[lastKey{id, lastKind}] = lastRow{connector: id, kind: lastKind, at: now, status: rc.Status,
					address: store.CleanText(rc.Address), uid: o.msg.UID, reply: store.CleanText(rc.LastReply)}
			}
		}
	}
	var s batchStats
	s.keys = make([]statKey, 0, len(counts))
	for k := range counts {
		s.keys = append(s.keys, k)
	}
	slices.SortFunc(s.keys, func(a, b statKey) int {
		return cmp.Or(cmp.Compare(a.connector, b.connector), cmp.Compare(a.hour, b.hour), strings.Compare(a.kind, b.kind))
	})
	s.counts = make([]int64, len(s.keys))
	for i, k := range s.keys {
		s.counts[i] = counts[k]
	}
	for _, l := range last {
		s.last = append(s.last, l)
	}
	slices.SortFunc(s.last, func(a, b lastRow) int {
		return cmp.Or(cmp.Compare(a.connector, b.connector), strings.Compare(a.kind, b.kind))
	})
	return s
}

// statsArgs are the rollup's arguments of outcomesPostgres ($18–$28).
func (s batchStats) args() []any {
	ids, hours, kinds := make([]int64, len(s.keys)), make([]int64, len(s.keys)), make([]string, len(s.keys))
	for i, k := range s.keys {
		ids[i], hours[i], kinds[i] = k.connector, k.hour, k.kind
	}
	n := len(s.last)
	lID, lKind, lAt := make([]int64, n), make([]string, n), make([]int64, n)
	lStatus, lAddr, lUID, lReply := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, l := range s.last {
		lID[i], lKind[i], lAt[i] = l.connector, l.kind, l.at
		lStatus[i], lAddr[i], lUID[i], lReply[i] = string(l.status), l.address, l.uid, l.reply
	}
	return []any{ids, hours, kinds, s.counts, lID, lKind, lAt, lStatus, lAddr, lUID, lReply}
}

// The rollup's upserts as plain statements, for SQLite's record (and the
// same on PostgreSQL, where outcomesPostgres has them as CTEs).
const (
	hourlyUpsert = `INSERT INTO connector_hourly (connector_id, hour, kind, n) VALUES %s
		ON CONFLICT (connector_id, hour, kind) DO UPDATE SET n = connector_hourly.n + excluded.n`
	hourlyRow  = `(?, ?, ?, ?)`
	lastUpsert = `INSERT INTO connector_last (connector_id, kind, at, status, address, message_uid, reply) VALUES %s
		ON CONFLICT (connector_id, kind) DO UPDATE SET at = excluded.at, status = excluded.status, address = excluded.address,
			message_uid = excluded.message_uid, reply = excluded.reply
		WHERE excluded.at >= connector_last.at`
	lastRowSQL = `(?, ?, ?, ?, ?, ?, ?)`
)

// write upserts the batch's counters and last rows inside tx.
func (s batchStats) write(tx *gorm.DB) error {
	var vals []any
	for i, k := range s.keys {
		vals = append(vals, k.connector, k.hour, k.kind, s.counts[i])
	}
	if err := insertValues(tx, hourlyUpsert, hourlyRow, 4, vals); err != nil {
		return fmt.Errorf("connector statistics: %w", err)
	}
	vals = vals[:0]
	for _, l := range s.last {
		vals = append(vals, l.connector, l.kind, l.at, string(l.status), l.address, l.uid, l.reply)
	}
	if err := insertValues(tx, lastUpsert, lastRowSQL, 7, vals); err != nil {
		return fmt.Errorf("connector last outcomes: %w", err)
	}
	return nil
}

// insertValues runs stmt with its VALUES list filled from vals, cols
// values a row, in as few statements as the parameter limit allows.
func insertValues(tx *gorm.DB, stmt, row string, cols int, vals []any) error {
	per := valuesPerStatement / cols * cols
	for len(vals) > 0 {
		n := min(len(vals), per)
		rows := strings.Repeat(row+",", n/cols)
		if err := tx.Exec(fmt.Sprintf(stmt, rows[:len(rows)-1]), vals[:n]...).Error; err != nil {
			return err
		}
		vals = vals[n:]
	}
	return nil
}

// latencyBucket is one bucket of the histogram as read back: the
// latencies in [lo, hi); hi is 0 for the open last bucket.
type latencyBucket struct {
	lo, hi time.Duration
	n      int64
}

// parseLatencyKind reads a "lat:" kind back into its bucket bounds.
func parseLatencyKind(kind string) (lo, hi time.Duration, ok bool) {
	v, ok := strings.CutPrefix(kind, latencyPrefix)
	if !ok {
		return 0, 0, false
	}
	if v == "inf" {
		return latencyBounds[len(latencyBounds)-1], 0, true
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return 0, 0, false
	}
	hi = time.Duration(ms) * time.Millisecond
	for _, b := range latencyBounds {
		if b < hi {
			lo = b
		}
	}
	return lo, hi, true
}

// Quantile is an estimated latency quantile: Value lies in the bucket
// [Lo, Hi) of the histogram (Hi 0: the open bucket beyond Lo, and Value
// is Lo).
type Quantile struct {
	Value, Lo, Hi time.Duration
}

// quantile estimates the q-quantile (0 < q ≤ 1) of the histogram: it
// finds the bucket that holds it and interpolates inside the bucket on a
// log scale (linearly in the first bucket, which starts at 0). ok is
// false for an empty histogram.
func quantile(buckets []latencyBucket, q float64) (Quantile, bool) {
	var total int64
	for _, b := range buckets {
		total += b.n
	}
	if total == 0 {
		return Quantile{}, false
	}
	rank := q * float64(total)
	var cum int64
	for _, b := range buckets {
		if b.n == 0 {
			continue
		}
		if float64(cum+b.n) < rank {
			cum += b.n
			continue
		}
		f := (rank - float64(cum)) / float64(b.n)
		var v time.Duration
		switch {
		case b.hi == 0:
			v = b.lo
		case b.lo == 0:
			v = time.Duration(f * float64(b.hi))
		default:
			v = time.Duration(float64(b.lo) * math.Pow(float64(b.hi)/float64(b.lo), f))
		}
		return Quantile{Value: v, Lo: b.lo, Hi: b.hi}, true
	}
	last := buckets[len(buckets)-1]
	return Quantile{Value: last.lo, Lo: last.lo, Hi: last.hi}, true
}
