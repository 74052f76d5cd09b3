package queue

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// HourCounts is one hour of a connector's mail (stats.go says what each
// figure counts).
type HourCounts struct {
	Start                                  time.Time // UTC
	Delivered, Deferred, Bounced, Rejected int64
}

// Total is the hour's mail, every outcome.
func (h HourCounts) Total() int64 { return h.Delivered + h.Deferred + h.Bounced + h.Rejected }

// LastOutcome is a connector's newest success or failure.
type LastOutcome struct {
	At         time.Time
	Status     Status // delivered; deferred, bounced, or rejected (at the relay)
	Address    string // the recipient; for a rejected message, its sender
	MessageUID string
	Reply      string // the next hop's reply, or the relay's to the client
}

// ConnectorStats is a connector's mail over the last StatsHours hours.
type ConnectorStats struct {
	Hours                                  [StatsHours]HourCounts // oldest first; the last is the current hour, so far
	Delivered, Deferred, Bounced, Rejected int64                  // over the window
	TLS                                    int64                  // delivered over TLS
	// Median and P95 of the time from receipt to delivery, estimated from
	// the latency histogram (Quantile says the bucket); HasLatency is
	// false when nothing was delivered.
	Median, P95 Quantile
	HasLatency  bool
	// The newest success and failure, at any time (nil: none recorded).
	LastSuccess, LastFailure *LastOutcome
}

// windowStart is the first hour the live view shows at now.
func windowStart(now time.Time) int64 {
	return hourStart(Micros(now)) - (StatsHours-1)*hourMicros
}

// hourIndex is the slot of an hour (Unix microseconds) in the window that
// starts at first; ok is false outside the window.
func hourIndex(first, hour int64) (int, bool) {
	i := (hour - first) / hourMicros
	return int(i), hour >= first && i < StatsHours
}

// hourCount is a count of one connector in one hour (its start, Unix
// microseconds).
type hourCount struct{ ConnectorID, Hour, N int64 }

// rejectedByHour counts inbound connectors' rejected messages per hour in
// a range of receipt, from messages_rejected_inbound.
const rejectedByHour = `SELECT inbound_connector_id AS connector_id, received_at / ` + hourMicrosSQL + ` * ` + hourMicrosSQL + ` AS hour, COUNT(*) AS n
	FROM messages WHERE status = 'rejected' AND inbound_connector_id IN ? AND received_at >= ? AND received_at < ?
	GROUP BY inbound_connector_id, received_at / ` + hourMicrosSQL

// rejectSettle is how long after its end an hour's rejected messages are
// taken to be all traced (the relay traces them without waiting, within
// moments; this leaves room for a slow database).
const rejectSettle = 15 * time.Minute

// rejections counts the rejected messages of the connectors ids per hour
// from first to now. Counting an hour from the index costs one index
// entry per rejected message — a busy Internet gateway refuses far more
// mail than it accepts — so an hour that is over (by rejectSettle) is
// counted once and its count kept in the rollup (kind "rejected", 0
// included); a view counts only the last hour or so from the index. The
// accept path pays nothing: the rollup's rejected rows are written by
// the first view that needs them.
func rejections(ctx context.Context, st *store.Store, ids []int64, first int64, now time.Time) ([]hourCount, error) {
	settled := max(first, hourStart(Micros(now.Add(-rejectSettle)))) // hours before it are over
	db := st.DB().WithContext(ctx)
	var kept []hourCount
	if err := db.Raw(`SELECT connector_id, hour, n FROM connector_hourly WHERE kind = 'rejected' AND connector_id IN ? AND hour >= ? AND hour < ?`,
		ids, first, settled).Scan(&kept).Error; err != nil {
		return nil, err
	}
	have := map[[2]int64]bool{}
	for _, k := range kept {
		have[[2]int64{k.ConnectorID, k.Hour}] = true
	}
	// The settled hours not kept yet: count them and keep their counts.
	var missing []int64
	from := settled
	for _, id := range ids {
		for h := first; h < settled; h += hourMicros {
			if !have[[2]int64{id, h}] {
				missing = append(missing, id)
				from = min(from, h)
				break
			}
		}
	}
	out := slices.Clone(kept)
	if len(missing) > 0 {
		var counted []hourCount
		if err := db.Raw(rejectedByHour, missing, from, settled).Scan(&counted).Error; err != nil {
			return nil, err
		}
		n := map[[2]int64]int64{}
		for _, c := range counted {
			n[[2]int64{c.ConnectorID, c.Hour}] = c.N
		}
		var vals []any
		for _, id := range missing {
			for h := from; h < settled; h += hourMicros {
				if k := [2]int64{id, h}; !have[k] {
					vals = append(vals, id, h, "rejected", n[k])
					if n[k] > 0 {
						out = append(out, hourCount{id, h, n[k]})
					}
				}
			}
		}
		if err := keepRejections(ctx, st, vals); err != nil {
			return nil, err
		}
	}
	var live []hourCount
	if err := db.Raw(rejectedByHour, ids, settled, Micros(now)+hourMicros).Scan(&live).Error; err != nil {
		return nil, err
	}
	return append(out, live...), nil
}

// keepRejections stores counted hours of rejected messages in the rollup;
// another view may have stored the same count first.
func keepRejections(ctx context.Context, st *store.Store, vals []any) error {
	if st.Dialect() == store.SQLite { // take the queue's turn to write (sqliteQueue.turn)
		mu := st.SQLiteWrites()
		mu.Lock()
		defer mu.Unlock()
	}
	return insertValues(st.BookkeepingDB().WithContext(ctx), `INSERT INTO connector_hourly (connector_id, hour, kind, n) VALUES %s
		ON CONFLICT (connector_id, hour, kind) DO NOTHING`, hourlyRow, 4, vals)
}

const hourMicrosSQL = "3600000000"

func init() {
	if strconv.FormatInt(hourMicros, 10) != hourMicrosSQL {
		panic("queue: hourMicrosSQL is not an hour")
	}
}

// ReadConnectorStats reads connector id's live view at now: the rollup's
// rows of the window (through its primary key), its last outcomes, and,
// for an inbound connector, its rejected messages (rejections) and newest
// rejection (through the partial index messages_rejected_inbound). Its
// cost does not grow with the trace.
func ReadConnectorStats(ctx context.Context, st *store.Store, id int64, inbound bool, now time.Time) (*ConnectorStats, error) {
	db := st.DB().WithContext(ctx)
	first := windowStart(now)
	s := &ConnectorStats{}
	for i := range s.Hours {
		s.Hours[i].Start = FromMicros(first + int64(i)*hourMicros)
	}
	var rows []struct {
		Hour int64
		Kind string
		N    int64
	}
	if err := db.Raw(`SELECT hour, kind, n FROM connector_hourly WHERE connector_id = ? AND hour >= ?`, id, first).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("connector statistics: %w", err)
	}
	var buckets []latencyBucket
	for _, r := range rows {
		i, ok := hourIndex(first, r.Hour)
		if !ok {
			continue
		}
		h := &s.Hours[i]
		switch r.Kind {
		case string(Delivered):
			h.Delivered += r.N
		case string(Deferred):
			h.Deferred += r.N
		case string(Bounced):
			h.Bounced += r.N
		case "tls":
			s.TLS += r.N
		default:
			if lo, hi, ok := parseLatencyKind(r.Kind); ok {
				buckets = append(buckets, latencyBucket{lo: lo, hi: hi, n: r.N})
			}
		}
	}
	var rejected []hourCount
	if inbound {
		var err error
		if rejected, err = rejections(ctx, st, []int64{id}, first, now); err != nil {
			return nil, fmt.Errorf("connector rejections: %w", err)
		}
	}
	for _, r := range rejected {
		if i, ok := hourIndex(first, r.Hour); ok {
			s.Hours[i].Rejected += r.N
		}
	}
	for _, h := range s.Hours {
		s.Delivered, s.Deferred, s.Bounced, s.Rejected = s.Delivered+h.Delivered, s.Deferred+h.Deferred, s.Bounced+h.Bounced, s.Rejected+h.Rejected
	}
	if len(buckets) > 0 {
		buckets = mergeBuckets(buckets)
		s.Median, s.HasLatency = quantile(buckets, 0.5)
		s.P95, _ = quantile(buckets, 0.95)
	}

	var last []struct {
		Kind, Status, Address, MessageUID, Reply string
		At                                       int64
	}
	if err := db.Raw(`SELECT kind, at, status, address, message_uid, reply FROM connector_last WHERE connector_id = ?`, id).Scan(&last).Error; err != nil {
		return nil, fmt.Errorf("connector last outcomes: %w", err)
	}
	for _, l := range last {
		o := &LastOutcome{At: FromMicros(l.At), Status: Status(l.Status), Address: l.Address, MessageUID: l.MessageUID, Reply: l.Reply}
		if l.Kind == "success" {
			s.LastSuccess = o
		} else {
			s.LastFailure = o
		}
	}
	if !inbound {
		return s, nil
	}
	// An inbound connector's newest rejected message is a failure too.
	var rej []struct {
		UID, Sender, Reply string
		ReceivedAt         int64
	}
	if err := db.Raw(`SELECT uid, sender, reply, received_at FROM messages WHERE status = 'rejected' AND inbound_connector_id = ?
		ORDER BY received_at DESC LIMIT 1`, id).Scan(&rej).Error; err != nil {
		return nil, fmt.Errorf("connector last rejection: %w", err)
	}
	if len(rej) == 1 && (s.LastFailure == nil || Micros(s.LastFailure.At) < rej[0].ReceivedAt) {
		r := rej[0]
		s.LastFailure = &LastOutcome{At: FromMicros(r.ReceivedAt), Status: Rejected, Address: r.Sender, MessageUID: r.UID, Reply: r.Reply}
	}
	return s, nil
}

// mergeBuckets sorts the histogram's buckets by their bounds and adds up
// the hours' counts of each.
func mergeBuckets(bs []latencyBucket) []latencyBucket {
	slices.SortFunc(bs, func(a, b latencyBucket) int { return cmp.Or(cmp.Compare(a.lo, b.lo), cmp.Compare(a.hi, b.hi)) })
	out := bs[:0]
	for _, b := range bs {
		if n := len(out); n > 0 && out[n-1].lo == b.lo && out[n-1].hi == b.hi {
			out[n-1].n += b.n
			continue
		}
		out = append(out, b)
	}
	return out
}

// HourlyTotals is the mail of each connector, outbound and inbound, per
// hour of the last StatsHours hours (oldest first), every outcome
// together: the connectors list's sparklines. It reads the rollup's rows
// of the window (through connector_hourly_hour) and the inbound
// connectors' rejections.
func HourlyTotals(ctx context.Context, st *store.Store, outbound, inbound []int64, now time.Time) (map[int64][StatsHours]int64, error) {
	ids := slices.Concat(outbound, inbound)
	out := make(map[int64][StatsHours]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	db := st.DB().WithContext(ctx)
	first := windowStart(now)
	var rows []hourCount
	if err := db.Raw(`SELECT connector_id, hour, SUM(n) AS n FROM connector_hourly
		WHERE hour >= ? AND kind IN ('delivered', 'deferred', 'bounced') AND connector_id IN ?
		GROUP BY connector_id, hour`, first, ids).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("connector statistics: %w", err)
	}
	if len(inbound) > 0 {
		rejected, err := rejections(ctx, st, inbound, first, now)
		if err != nil {
			return nil, fmt.Errorf("connector rejections: %w", err)
		}
		rows = append(rows, rejected...)
	}
	for _, r := range rows {
		if i, ok := hourIndex(first, r.Hour); ok {
			t := out[r.ConnectorID]
			t[i] += r.N
			out[r.ConnectorID] = t
		}
	}
	return out, nil
}

// InboundDepths counts the recipients waiting for delivery (queued or
// deferred) per inbound connector id of their message — the counterpart of
// Depths, which counts by outbound connector. Like Depths it starts from
// the waiting messages (messages_due), so its cost follows the queue.
func InboundDepths(ctx context.Context, st *store.Store) (map[int64]int64, error) {
	var rows []struct{ InboundConnectorID, N int64 }
	err := st.DB().WithContext(ctx).Raw(`SELECT m.inbound_connector_id, COUNT(*) AS n
		FROM messages m JOIN message_recipients r ON r.message_id = m.id
		WHERE m.status IN ('queued', 'deferred') AND r.status IN ('queued', 'deferred') AND m.inbound_connector_id IS NOT NULL
		GROUP BY m.inbound_connector_id`).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("queue depths by inbound connector: %w", err)
	}
	out := make(map[int64]int64, len(rows))
	for _, r := range rows {
		out[r.InboundConnectorID] = r.N
	}
	return out, nil
}

// pruneStats deletes the rollup's hours older than statsKeep (and, with a
// shorter trace retention, older than the trace's cutoff), so it never
// describes mail whose trace is gone and stays bounded.
func pruneStats(ctx context.Context, st *store.Store, cutoff time.Time) error {
	before := max(Micros(cutoff), Micros(time.Now().Add(-statsKeep)))
	if st.Dialect() == store.SQLite { // take the queue's turn to write (sqliteQueue.turn)
		mu := st.SQLiteWrites()
		mu.Lock()
		defer mu.Unlock()
	}
	return st.BookkeepingDB().WithContext(ctx).Exec(`DELETE FROM connector_hourly WHERE hour < ?`, hourStart(before)).Error
}
