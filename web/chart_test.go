package web

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestHourChartBars: one <rect> per outcome with mail in an hour, none for
// empty hours or outcomes, stacked from the axis up in the legend's
// order, scaled to a round top of the count scale.
func TestHourChartBars(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	hours := make([]LiveHour, 24)
	for i := range hours {
		hours[i].Start = start.Add(time.Duration(i) * time.Hour)
	}
	hours[3].Counts = [4]int64{30, 5, 0, 2}
	hours[23].Counts = [4]int64{1, 0, 0, 0}
	c := NewHourChart(hours, true)
	var got []string
	for _, b := range c.Bars {
		got = append(got, fmt.Sprintf("%s/%s=%d", b.Hour, b.Outcome, b.Count))
	}
	want := "2026-03-01T03:00Z/delivered=30 2026-03-01T03:00Z/deferred=5 2026-03-01T03:00Z/rejected=2 2026-03-01T23:00Z/delivered=1"
	if strings.Join(got, " ") != want {
		t.Fatalf("bars %s, want %s", strings.Join(got, " "), want)
	}
	d, f, r := c.Bars[0], c.Bars[1], c.Bars[2]
	if d.Y+d.H != c.Bottom || f.Y+f.H != d.Y || r.Y+r.H != f.Y || d.X != f.X {
		t.Fatalf("not stacked from the axis: %+v %+v %+v (axis at %v)", d, f, r, c.Bottom)
	}
	// 37 at most: the scale goes 0, 10, …, 40, and 37 is 37/40 of the plot.
	var ticks []string
	for _, y := range c.YTicks {
		ticks = append(ticks, y.Label)
	}
	if strings.Join(ticks, " ") != "0 10 20 30 40" {
		t.Fatalf("count scale %v", ticks)
	}
	if h := d.H + f.H + r.H; h < 0.92*(c.Bottom-c.Top) || h > 0.93*(c.Bottom-c.Top) {
		t.Fatalf("a bar of 37 is %.1f of %.1f", h, c.Bottom-c.Top)
	}
	if c.Bars[3].H < 1.5 {
		t.Fatalf("a bar of 1 is %.2f high: invisible", c.Bars[3].H)
	}
	// Every third hour is labelled, the current one included, with dates under midnight.
	if l := c.XTicks[len(c.XTicks)-1]; l.Label != "23:00" || c.XTicks[0].Label != "02:00" || c.XTicks[0].Sub != "Mar 1" {
		t.Fatalf("hour labels %+v", c.XTicks)
	}
	if c.Empty || len(c.Legend) != 4 || c.Legend[3].LabelWithSums != "Rejected at the relay 2" {
		t.Fatalf("legend %+v", c.Legend)
	}
	// An outbound connector's legend has no rejected series; an empty chart says so.
	c = NewHourChart(make([]LiveHour, 24), false)
	if !c.Empty || len(c.Bars) != 0 || len(c.Legend) != 3 {
		t.Fatalf("empty chart: empty=%v bars=%d legend=%d", c.Empty, len(c.Bars), len(c.Legend))
	}
}

func TestNiceScaleAndThousands(t *testing.T) {
	for peak, want := range map[int64][2]int64{0: {4, 1}, 1: {1, 1}, 3: {3, 1}, 6: {6, 2}, 37: {40, 10}, 61: {80, 20}, 1234: {1500, 500}} {
		if top, step := niceScale(peak); top != want[0] || step != want[1] {
			t.Errorf("niceScale(%d) = %d, %d; want %d, %d", peak, top, step, want[0], want[1])
		}
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSparkline(t *testing.T) {
	totals := make([]int64, 24)
	totals[0], totals[23] = 10, 5
	s := NewSparkline(totals, nil)
	if len(s.Bars) != 2 || s.Total != 15 || s.Bars[0].H <= s.Bars[1].H || s.Label != "15 in the last 24 hours; at most 10 an hour" {
		t.Fatalf("sparkline %+v", s)
	}
}
