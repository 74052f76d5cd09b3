package web

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Server-drawn SVG charts of the connector live view: the geometry is
// computed here, liveview.templ writes the elements. Colours are SVG
// presentation attributes (the console's Content-Security-Policy allows
// no inline style), and every bar is a <rect> with a <title>, so the chart
// reads without JavaScript, in a screenshot and by hovering.

// Outcome is one series of the hourly chart.
type Outcome struct {
	Key   string // delivered, deferred, bounced, rejected: the bars' data-outcome
	Label string
	Color string
}

// Outcomes are the chart's series, stacked from the bottom in this order.
var Outcomes = [4]Outcome{
	{"delivered", "Delivered", "#2da44e"},
	{"deferred", "Deferred", "#d4a72c"},
	{"bounced", "Bounced", "#cf222e"},
	{"rejected", "Rejected at the relay", "#6e7781"},
}

// LiveHour is one hour of a connector's mail, counted by Outcomes.
type LiveHour struct {
	Start  time.Time // UTC
	Counts [4]int64
}

// Total is the hour's mail, every outcome.
func (h LiveHour) Total() int64 { return h.Counts[0] + h.Counts[1] + h.Counts[2] + h.Counts[3] }

// ChartRect is one bar segment: an outcome's count in an hour.
type ChartRect struct {
	X, Y, W, H float64
	Outcome    string // data-outcome
	Hour       string // data-hour: the hour's start, 2006-01-02T15:00Z
	Count      int64
	Color      string
	Title      string // the tooltip: "14:00–15:00 UTC: 12 delivered"
}

// ChartTick is a labelled position on an axis.
type ChartTick struct {
	Pos   float64
	Label string
	Sub   string // a second line (the date, under midnight and the first hour)
}

// ChartLegend is one legend entry.
type ChartLegend struct {
	X             float64
	Outcome       Outcome
	Total         int64
	LabelWithSums string // "Delivered 1,234"
}

// HourChart is the stacked-bar chart of the last 24 hours.
type HourChart struct {
	Width, Height            float64
	Left, Right, Top, Bottom float64 // the plot area
	Bars                     []ChartRect
	YTicks                   []ChartTick // Pos: y
	XTicks                   []ChartTick // Pos: x, the slot's centre
	Slots                    []float64   // every hour's tick mark (x)
	Legend                   []ChartLegend
	Empty                    bool
	Summary                  string // the chart in words, for <desc>
}

const (
	chartWidth  = 1100
	chartHeight = 280
)

// NewHourChart lays out the chart of hours (oldest first; the last is the
// current hour). withRejected: the legend has the rejected series (an
// inbound connector's; an outbound connector never rejects).
func NewHourChart(hours []LiveHour, withRejected bool) HourChart {
	c := HourChart{Width: chartWidth, Height: chartHeight, Left: 58, Right: chartWidth - 12, Top: 40, Bottom: chartHeight - 60}
	var peak int64
	var totals [4]int64
	for _, h := range hours {
		peak = max(peak, h.Total())
		for i, n := range h.Counts {
			totals[i] += n
		}
	}
	c.Empty = peak == 0
	top, step := niceScale(peak)
	plotH := c.Bottom - c.Top
	for v := int64(0); v <= top; v += step {
		c.YTicks = append(c.YTicks, ChartTick{Pos: c.Bottom - float64(v)/float64(top)*plotH, Label: Thousands(v)})
	}
	n := max(len(hours), 1)
	slot := (c.Right - c.Left) / float64(n)
	barW := slot * 0.68
	for i, h := range hours {
		x := c.Left + float64(i)*slot
		c.Slots = append(c.Slots, x)
		// Label every third hour, counting back from the current one, and
		// the date under midnight and under the first label.
		if (len(hours)-1-i)%3 == 0 {
			t := ChartTick{Pos: x + slot/2, Label: h.Start.UTC().Format("15:04")}
			if h.Start.UTC().Hour() < 3 || len(c.XTicks) == 0 {
				t.Sub = h.Start.UTC().Format("Jan 2")
			}
			c.XTicks = append(c.XTicks, t)
		}
		y := c.Bottom
		hour := h.Start.UTC().Format("2006-01-02T15:04Z")
		span := h.Start.UTC().Format("15:04") + "–" + h.Start.UTC().Add(time.Hour).Format("15:04") + " UTC"
		for k, o := range Outcomes {
			cnt := h.Counts[k]
			if cnt == 0 {
				continue
			}
			bh := max(float64(cnt)/float64(top)*plotH, 1.5) // a single message stays visible next to thousands
			y -= bh
			c.Bars = append(c.Bars, ChartRect{X: x + (slot-barW)/2, Y: y, W: barW, H: bh, Outcome: o.Key, Hour: hour, Count: cnt, Color: o.Color,
				Title: fmt.Sprintf("%s: %s %s", span, Thousands(cnt), strings.ToLower(o.Label))})
		}
	}
	c.Slots = append(c.Slots, c.Right)
	x := c.Left
	for k, o := range Outcomes {
		if o.Key == "rejected" && !withRejected && totals[k] == 0 {
			continue
		}
		l := ChartLegend{X: x, Outcome: o, Total: totals[k], LabelWithSums: o.Label + " " + Thousands(totals[k])}
		c.Legend = append(c.Legend, l)
		x += 34 + 7.2*float64(len([]rune(l.LabelWithSums)))
	}
	var parts []string
	for k, o := range Outcomes {
		if o.Key == "rejected" && !withRejected && totals[k] == 0 {
			continue
		}
		parts = append(parts, Thousands(totals[k])+" "+strings.ToLower(o.Label))
	}
	c.Summary = "Mail per hour over the last 24 hours: " + strings.Join(parts, ", ") + "."
	return c
}

// niceScale is the axis's top and step for a peak: 1, 2 or 5 × 10^k steps,
// at most five of them, whole numbers only.
func niceScale(peak int64) (top, step int64) {
	if peak <= 0 {
		return 4, 1
	}
	for mag := int64(1); ; mag *= 10 {
		for _, m := range []int64{1, 2, 5} {
			step = m * mag
			if (peak+step-1)/step <= 5 {
				return (peak + step - 1) / step * step, step
			}
		}
	}
}

// Sparkline is the tiny chart of 24 hourly totals on the connectors list.
type Sparkline struct {
	Width, Height float64
	Bars          []ChartRect
	Total         int64
	Label         string // "1,234 in the last 24 hours; at most 210 an hour"
}

// NewSparkline draws totals (oldest first).
func NewSparkline(totals []int64, starts []time.Time) Sparkline {
	const w, h, bar = 4.0, 22.0, 3.0
	s := Sparkline{Width: w * float64(len(totals)), Height: h}
	var peak int64
	for _, n := range totals {
		peak = max(peak, n)
		s.Total += n
	}
	for i, n := range totals {
		if n == 0 {
			continue
		}
		bh := max(float64(n)/float64(peak)*(h-2), 2)
		r := ChartRect{X: float64(i) * w, Y: h - 1 - bh, W: bar, H: bh, Outcome: "total", Count: n, Color: "#0b5cad"}
		if i < len(starts) {
			r.Hour = starts[i].UTC().Format("2006-01-02T15:04Z")
			r.Title = fmt.Sprintf("%s–%s UTC: %s", starts[i].UTC().Format("15:04"), starts[i].UTC().Add(time.Hour).Format("15:04"), Thousands(n))
		}
		s.Bars = append(s.Bars, r)
	}
	s.Label = Thousands(s.Total) + " in the last 24 hours"
	if peak > 0 {
		s.Label += "; at most " + Thousands(peak) + " an hour"
	}
	return s
}

// Thousands writes n with thousands separators: 1,234,567.
func Thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// f1 writes a coordinate for an SVG attribute.
func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// viewBox is the chart's SVG viewBox.
func viewBox(w, h float64) string { return "0 0 " + f1(w) + " " + f1(h) }

// LiveView is the live view of a connector's page (liveview.templ).
type LiveView struct {
	Intro   string // what the figures count, for this direction
	Chart   HourChart
	Figures []LiveFigure
	// TraceHref is the message trace filtered to the connector.
	TraceHref string
}

// LiveFigure is one line of figures under the chart.
type LiveFigure struct {
	Label  string
	Value  string
	Detail string // smaller, after the value
	Href   string // the value links here (a message's trace), if set
	Code   string // a reply, shown as code after the value
}

// ConnectorOverview is a connector's small live view on the list.
type ConnectorOverview struct {
	Spark Sparkline
	Depth int64 // recipients waiting
}
