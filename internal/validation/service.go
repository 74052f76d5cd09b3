package validation

import (
	"context"
	"fmt"
	"strings"
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
	c, err := s.Store.GetConnector(ctx, dir, id)
	if err != nil {
		return nil, err
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
	ctx, cancel := context.WithTimeout(ctx, MaxRunTime)
	defer cancel()
	var v *store.Validation
	switch spec := c.Spec.(type) {
	case *connector.OutboundSpec:
		if len(rcpts) == 0 && len(errs) == 0 {
			rcpts = spec.ValidationRecipients
		}
		if len(rcpts) == 0 && errs["recipients"] == "" {
			errs["recipients"] = "enter at least one recipient for the test message (or set the connector's test message recipients)"
		}
		if len(errs) > 0 {
			return nil, errs
		}
		if sender == "" {
			sender = DefaultSender(s.Outbound.Hostname)
		}
		v = s.Outbound.Validate(ctx, c.ID, c.Name, c.Revision, spec, sender, rcpts)
	case *connector.InboundSpec:
		if len(errs) > 0 {
			return nil, errs
		}
		if s.Inbound == nil {
			return nil, fmt.Errorf("inbound validation needs the SMTP relay of this process, which is not running")
		}
		v = s.Inbound.Validate(ctx, c.ID, c.Name, c.Revision, spec, sender, rcpts)
	default:
		return nil, fmt.Errorf("connector %d: unknown direction", id)
	}
	// Record with a fresh context: a run that hit its time limit is still
	// a result.
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	if err := s.Store.RecordValidation(rctx, actor, dir, v); err != nil {
		return nil, err
	}
	return v, nil
}
