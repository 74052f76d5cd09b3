package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/web"
)

// The connectors' live view (SPEC 4): a connector's mail of the last 24
// hours on its page, and a sparkline with the queue depth on the list.
// The figures come from the queue's rollup (queue/stats.go), which the
// delivery workers keep in the statement that records outcomes, so these
// pages read a few hundred rows however large the trace is.

// connectorLiveView builds conn's live view at now.
func (c *Console) connectorLiveView(r *http.Request, conn *store.Connector, now time.Time) (*web.LiveView, error) {
	s, err := queue.ReadConnectorStats(r.Context(), c.store, conn.ID, conn.Direction == connector.Inbound, now)
	if err != nil {
		return nil, err
	}
	depths, err := c.depths(r, conn.Direction)
	if err != nil {
		return nil, err
	}
	v := &web.LiveView{TraceHref: "/trace?connector=" + url.QueryEscape(conn.Name)}
	if conn.Direction == connector.Inbound {
		v.Intro = "Recipients of the mail received through this connector by what became of them, and the messages it refused at the relay, per hour (UTC). Each deferral counts: a recipient deferred twice counts twice."
	} else {
		v.Intro = "Recipients this connector delivered, deferred and bounced, per hour (UTC). Each deferral counts: a recipient deferred twice counts twice."
	}
	hours := make([]web.LiveHour, len(s.Hours))
	for i, h := range s.Hours {
		hours[i] = web.LiveHour{Start: h.Start, Counts: [4]int64{h.Delivered, h.Deferred, h.Bounced, h.Rejected}}
	}
	v.Chart = web.NewHourChart(hours, conn.Direction == connector.Inbound)

	tls := web.LiveFigure{Label: "Delivered over TLS", Value: "–", Detail: "nothing delivered in the last 24 hours"}
	if s.Delivered > 0 {
		tls.Value = percent(s.TLS, s.Delivered)
		tls.Detail = fmt.Sprintf("%s of %s delivered recipients", web.Thousands(s.TLS), web.Thousands(s.Delivered))
	}
	lat := web.LiveFigure{Label: "Delivery latency", Value: "–", Detail: "nothing delivered in the last 24 hours"}
	if s.HasLatency {
		lat.Value = "median ≈ " + duration(s.Median.Value) + " · p95 ≈ " + duration(s.P95.Value)
		lat.Detail = fmt.Sprintf("from receipt to delivery; estimated from latency buckets: median %s, p95 %s",
			bucket(s.Median), bucket(s.P95))
	}
	depth := depths[conn.ID]
	q := web.LiveFigure{Label: "Queue depth", Value: recipients(depth) + " waiting"}
	if conn.Direction == connector.Inbound {
		q.Detail = "queued or deferred, of mail received through this connector"
	} else {
		q.Detail, q.Href = "queued or deferred for this connector", "/queue"
	}
	v.Figures = []web.LiveFigure{tls, lat, q, lastFigure("Last success", s.LastSuccess), lastFigure("Last failure", s.LastFailure)}
	return v, nil
}

// depths are the recipients waiting per connector of a direction: by
// their route (outbound) or by the connector their message came through.
func (c *Console) depths(r *http.Request, dir connector.Direction) (map[int64]int64, error) {
	if dir == connector.Inbound {
		return queue.InboundDepths(r.Context(), c.store)
	}
	return queue.Depths(r.Context(), c.store)
}

// connectorOverviews are the list's sparklines and queue depths.
func (c *Console) connectorOverviews(r *http.Request, all []*store.Connector, now time.Time) (map[int64]web.ConnectorOverview, error) {
	var outbound, inbound []int64
	for _, conn := range all {
		if conn.Direction == connector.Inbound {
			inbound = append(inbound, conn.ID)
		} else {
			outbound = append(outbound, conn.ID)
		}
	}
	totals, err := queue.HourlyTotals(r.Context(), c.store, outbound, inbound, now)
	if err != nil {
		return nil, err
	}
	in, err := c.depths(r, connector.Inbound)
	if err != nil {
		return nil, err
	}
	out, err := c.depths(r, connector.Outbound)
	if err != nil {
		return nil, err
	}
	hour := now.UTC().Truncate(time.Hour)
	starts := make([]time.Time, queue.StatsHours)
	for i := range starts {
		starts[i] = hour.Add(-time.Duration(queue.StatsHours-1-i) * time.Hour)
	}
	m := make(map[int64]web.ConnectorOverview, len(all))
	for _, conn := range all {
		t := totals[conn.ID]
		o := web.ConnectorOverview{Spark: web.NewSparkline(t[:], starts), Depth: out[conn.ID]}
		if conn.Direction == connector.Inbound {
			o.Depth = in[conn.ID]
		}
		m[conn.ID] = o
	}
	return m, nil
}

// lastFigure shows a connector's last success or failure: when (a link
// to the message's trace), what and to whom, and the reply.
func lastFigure(label string, l *queue.LastOutcome) web.LiveFigure {
	if l == nil {
		return web.LiveFigure{Label: label, Value: "none recorded"}
	}
	f := web.LiveFigure{Label: label, Value: web.When(l.At), Code: l.Reply}
	if l.MessageUID != "" {
		f.Href = "/trace/" + url.PathEscape(l.MessageUID)
	}
	switch l.Status {
	case queue.Rejected:
		f.Detail = "refused mail from " + orNull(l.Address)
	case queue.Delivered:
		f.Detail = "delivered to " + l.Address
	default:
		f.Detail = string(l.Status) + ": " + l.Address
	}
	return f
}

func orNull(sender string) string {
	if sender == "" {
		return "<> (the null sender)"
	}
	return sender
}

func recipients(n int64) string {
	if n == 1 {
		return "1 recipient"
	}
	return web.Thousands(n) + " recipients"
}

// percent is part/whole as a whole percentage, never rounded up to 100
// nor down to 0 when it is not.
func percent(part, whole int64) string {
	p := part * 100 / whole
	switch {
	case part == whole:
		return "100%"
	case p == 0 && part > 0:
		return "under 1%"
	}
	return strconv.FormatInt(p, 10) + "%"
}

// duration writes a latency briefly: 35 ms, 1.4 s, 42 s, 3.5 min, 2 h.
func duration(d time.Duration) string {
	num := func(v float64, unit string) string {
		s := strconv.FormatFloat(v, 'f', 1, 64)
		if v >= 10 {
			s = strconv.FormatFloat(v, 'f', 0, 64)
		}
		return strings.TrimSuffix(s, ".0") + " " + unit
	}
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case d < time.Minute:
		return num(d.Seconds(), "s")
	case d < time.Hour:
		return num(d.Minutes(), "min")
	}
	return num(d.Hours(), "h")
}

// bucket writes a quantile's bucket: "1–2 s", "0–10 ms", "over 48 h".
func bucket(q queue.Quantile) string {
	if q.Hi == 0 {
		return "over " + duration(q.Lo)
	}
	lo, hi := duration(q.Lo), duration(q.Hi)
	if l, unit, ok := strings.Cut(lo, " "); ok && strings.HasSuffix(hi, " "+unit) {
		return l + "–" + hi
	}
	if q.Lo == 0 {
		return "0–" + hi
	}
	return lo + "–" + hi
}
