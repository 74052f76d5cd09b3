package app

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/store"
)

// writerFailingWindow is how long a failed commit of received mail keeps
// /readyz at 503 when nothing has committed since. The probes below decide
// after that: with the load balancer turned away no mail may arrive to
// show that commits work again.
const writerFailingWindow = 10 * time.Second

// readiness answers /readyz: 200 when the relay can accept mail now — the
// database answers, its schema is current, it takes writes (on SQLite: the
// data directory is writable and has room for a message of the largest
// size), and the queue's last commit did not just fail — and 503 with the
// reason otherwise, so that a load balancer moves away.
type readiness struct {
	st      *store.Store
	writer  *queue.Writer // nil: not checked
	minFree int64
}

func (rd readiness) check(ctx context.Context) error {
	if err := rd.st.Ping(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	cur, known, err := rd.st.SchemaStatus(ctx)
	if err != nil || cur != known {
		return fmt.Errorf("database schema at version %d, want %d", cur, known)
	}
	if err := rd.st.Writable(ctx, rd.minFree); err != nil {
		return err
	}
	if rd.writer != nil && rd.writer.Failing(writerFailingWindow) {
		return fmt.Errorf("storing received mail failed within the last %s (the relay answers 451)", writerFailingWindow)
	}
	return nil
}

func (rd readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := rd.check(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, err)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}
