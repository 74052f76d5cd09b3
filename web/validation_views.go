package web

import (
	"fmt"
	"strings"
	"time"
)

// Seconds says how long d is, in the one unit style of validation
// reports: "0.4 s", "2.5 s", "30 s". Milliseconds appear only in a
// report's transcript.
func Seconds(d time.Duration) string {
	switch {
	case d < 50*time.Millisecond:
		return "under 0.1 s"
	case d < 10*time.Second:
		s := fmt.Sprintf("%.1f", d.Seconds())
		return strings.TrimSuffix(s, ".0") + " s"
	}
	return fmt.Sprintf("%d s", int(d.Round(time.Second).Seconds()))
}

// StepTime is a step's duration in the report's unit style.
func StepTime[T ~int | ~int64](ms T) string { return Seconds(time.Duration(ms) * time.Millisecond) }

// RunTime says how long a run took, in seconds.
func (v ValidationView) RunTime() string {
	return Seconds(v.FinishedAt.Sub(v.StartedAt))
}
