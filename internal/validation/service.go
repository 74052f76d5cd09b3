package validation

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
)

// MaxRunTime bounds one validation run, so that the console's request and
// the API call that waits for it end.
const MaxRunTime = 100 * time.Second

// Service validates connectors and records the runs; the API and the
// console both use it.
type Service struct {
	Store    *store.Store
	Outbound *Outbound
	Inbound  *Inbound // nil when the relay is not running in this process

	mu   sync.Mutex
	runs map[string]*Progress // runs started with Start, by id
}

// Request is what an admin may choose for a run.
type Request struct {
	Recipients []string
	Sender     string
}

// Run validates the newest revision of a connector, records the result
// and returns it. Bad input is a connector.FieldErrors (fields
// "recipients" and "sender").
func (s *Service) Run(ctx context.Context, actor store.Actor, dir connector.Direction, id int64, req Request) (*store.Validation, error) {
	exec, _, err := s.prepare(ctx, dir, id, req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, MaxRunTime)
	defer cancel()
	return s.finish(actor, dir, exec(ctx))
}

// prepare checks the request and returns the run to execute.
func (s *Service) prepare(ctx context.Context, dir connector.Direction, id int64, req Request) (func(context.Context) *store.Validation, *store.Connector, error) {
	c, err := s.Store.GetConnector(ctx, dir, id)
	if err != nil {
		return nil, nil, err
	}
	errs := connector.FieldErrors{}
	var rcpts []string
	for _, raw := range req.Recipients {
		if strings.TrimSpace(raw) == "" {
			continue
		}
		a, err := connector.ParseAddress(raw)
		if err != nil {
			errs["recipients"] = err.Error()
			break
		}
		rcpts = append(rcpts, a.String())
	}
	if len(rcpts) > 20 {
		errs["recipients"] = "at most 20 recipients per validation"
	}
	sender := strings.TrimSpace(req.Sender)
	if sender != "" {
		a, err := connector.ParseAddress(sender)
		if err != nil {
			errs["sender"] = err.Error()
		} else {
			sender = a.String()
		}
	}
	switch spec := c.Spec.(type) {
	case *connector.OutboundSpec:
		if len(rcpts) == 0 && len(errs) == 0 {
			rcpts = spec.ValidationRecipients
		}
		if len(rcpts) == 0 && errs["recipients"] == "" {
			errs["recipients"] = "enter at least one recipient for the test message (or set the connector's test message recipients)"
		}
		if len(errs) > 0 {
			return nil, nil, errs
		}
		if sender == "" {
			sender = DefaultSender(s.Outbound.Hostname)
		}
		return func(ctx context.Context) *store.Validation {
			return s.Outbound.Validate(ctx, c.ID, c.Name, c.Revision, spec, sender, rcpts)
		}, c, nil
	case *connector.InboundSpec:
		if len(errs) > 0 {
			return nil, nil, errs
		}
		if s.Inbound == nil {
			return nil, nil, fmt.Errorf("inbound validation needs the SMTP relay of this process, which is not running")
		}
		return func(ctx context.Context) *store.Validation {
			return s.Inbound.Validate(ctx, c.ID, c.Name, c.Revision, spec, sender, rcpts)
		}, c, nil
	}
	return nil, nil, fmt.Errorf("connector %d: unknown direction", id)
}

// finish records a finished run, with a fresh context: a run that hit its
// time limit is still a result.
func (s *Service) finish(actor store.Actor, dir connector.Direction, v *store.Validation) (*store.Validation, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Store.RecordValidation(ctx, actor, dir, v); err != nil {
		return nil, err
	}
	return v, nil
}

// Progress is a run started with Start, as far as it got.
type Progress struct {
	ConnectorID int64
	Revision    int

	mu     sync.Mutex
	steps  []store.ValidationStep
	wait   *Wait
	done   bool
	result *store.Validation
	err    error
	ended  time.Time
}

// Snapshot returns the steps so far and, once the run is done, its
// recorded result or error.
func (p *Progress) Snapshot() (steps []store.ValidationStep, done bool, result *store.Validation, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]store.ValidationStep(nil), p.steps...), p.done, p.result, p.err
}

// Waiting says what the run is waiting for now, if anything: a host that
// has not answered yet.
func (p *Progress) Waiting() (Wait, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wait == nil || p.done {
		return Wait{}, false
	}
	return *p.wait, true
}

// Start checks the request (returning field errors at once) and runs the
// validation in the background, so that a page can show its steps as they
// happen. The run is recorded when it ends, as with Run.
func (s *Service) Start(ctx context.Context, actor store.Actor, dir connector.Direction, id int64, req Request) (string, *Progress, error) {
	exec, c, err := s.prepare(ctx, dir, id, req)
	if err != nil {
		return "", nil, err
	}
	p := &Progress{ConnectorID: c.ID, Revision: c.Revision}
	runID := randomID()
	s.mu.Lock()
	if s.runs == nil {
		s.runs = map[string]*Progress{}
	}
	for k, old := range s.runs {
		old.mu.Lock()
		stale := old.done && time.Since(old.ended) > 15*time.Minute
		old.mu.Unlock()
		if stale {
			delete(s.runs, k)
		}
	}
	s.runs[runID] = p
	s.mu.Unlock()
	go func() {
		rctx, cancel := context.WithTimeout(context.Background(), MaxRunTime)
		defer cancel()
		rctx = withObserver(rctx, observer{
			step: func(step store.ValidationStep) {
				p.mu.Lock()
				p.steps = append(p.steps, step)
				p.mu.Unlock()
			},
			wait: func(w *Wait) {
				p.mu.Lock()
				p.wait = w
				p.mu.Unlock()
			},
		})
		v, err := s.finish(actor, dir, exec(rctx))
		p.mu.Lock()
		p.done, p.result, p.err, p.ended = true, v, err, time.Now()
		p.mu.Unlock()
	}()
	return runID, p, nil
}

// Progress returns a run started in this process, or nil.
func (s *Service) Progress(runID string) *Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[runID]
}
