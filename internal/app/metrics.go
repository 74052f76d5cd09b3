package app

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/store"
)

// newMetrics builds the Prometheus registry served on /metrics. The values
// come from counters the parts keep anyway, read at scrape time.
func newMetrics(st *store.Store, live *liveconfig.Config, rl *relay.Relay, w *queue.Writer, wk *queue.Workers) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	counter := func(name, help string, labels prometheus.Labels, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, f))
	}
	counter("flowgate_smtp_messages_total", "Messages the relay finished receiving, by result.", prometheus.Labels{"result": "accepted"},
		func() float64 { a, _ := rl.Counts(); return float64(a) })
	counter("flowgate_smtp_messages_total", "Messages the relay finished receiving, by result.", prometheus.Labels{"result": "rejected"},
		func() float64 { _, r := rl.Counts(); return float64(r) })
	counter("flowgate_queue_commits_total", "Group commits of the queue writer.", nil,
		func() float64 { b, _, _ := w.Stats(); return float64(b) })
	counter("flowgate_queue_committed_messages_total", "Messages and traces committed by the queue writer.", nil,
		func() float64 { _, c, _ := w.Stats(); return float64(c) })
	counter("flowgate_trace_dropped_total", "Rejected-message traces dropped because the database fell behind.", nil,
		func() float64 { _, _, d := w.Stats(); return float64(d) })
	const passes = "Messages taken up for a delivery pass, by where they came from: handed over in memory by the accepting process, or claimed from the queue."
	counter("flowgate_delivery_messages_total", passes, prometheus.Labels{"source": "memory"},
		func() float64 { m, _ := wk.Stats(); return float64(m) })
	counter("flowgate_delivery_messages_total", passes, prometheus.Labels{"source": "queue"},
		func() float64 { _, q := wk.Stats(); return float64(q) })
	counter("flowgate_config_reloads_total", "Routing index rebuilds.", nil, func() float64 { return float64(live.Version()) })
	reg.MustRegister(queueDepth{st: st, desc: prometheus.NewDesc("flowgate_queue_messages", "Messages waiting for delivery, by status.", []string{"status"}, nil)})
	return reg
}

// queueDepth counts waiting messages at scrape time (one small query).
type queueDepth struct {
	st   *store.Store
	desc *prometheus.Desc
}

func (q queueDepth) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

func (q queueDepth) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var rows []struct {
		Status string
		N      int64
	}
	if err := q.st.DB().WithContext(ctx).Raw(`SELECT status, COUNT(*) AS n FROM messages WHERE status IN ('queued', 'deferred') GROUP BY status`).Scan(&rows).Error; err != nil {
		ch <- prometheus.NewInvalidMetric(q.desc, err)
		return
	}
	counts := map[string]int64{"queued": 0, "deferred": 0}
	for _, r := range rows {
		counts[r.Status] = r.N
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(n), s)
	}
}
