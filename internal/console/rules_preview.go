package console

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/preview"
	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/web"
)

// runPreview replays the draft rule over the traced mail of the window
// (SPEC 7, Preview) and tells what it would have changed. The draft stands
// in for the stored rule of its id, if it has one. A draft the preview
// refuses (a connector that does not exist) adds its reasons to errs and
// shows no preview.
func (c *Console) runPreview(r *http.Request, rule *rules.Rule, window string, errs *ruleErrors) (*web.RulePreview, error) {
	label, since := previewWindow(window)
	res, err := preview.Run(r.Context(), c.store, preview.Request{Rule: rule, Since: since, Now: time.Now()})
	if err != nil {
		var fe rules.FieldErrors
		if errors.As(err, &fe) {
			// The preview's paths are inside its request: "rule.name".
			inRule := rules.FieldErrors{}
			for k, v := range fe {
				switch {
				case k == "rule":
					inRule[""] = v
				case strings.HasPrefix(k, "rule."):
					inRule[strings.TrimPrefix(k, "rule.")] = v
				default:
					inRule[""] = k + ": " + v
				}
			}
			errs.add(inRule)
			return nil, nil
		}
		return nil, err
	}
	p := &web.RulePreview{
		Window: label, Considered: res.Considered, Matched: res.Matched, Undecidable: res.Undecidable,
		Total: res.ChangedTotal, Truncated: res.Truncated,
	}
	switch {
	case !rule.Enabled:
		p.Note = "The rule is turned off in this form, so it would change nothing: Matched counts the messages it matches, but no recipient would go elsewhere. Tick “Turn the rule on” and preview again to see what it would change."
	case rule.Mode == rules.Audit:
		p.Note = "The rule is in audit mode in this form, so it would change nothing: Matched counts the messages it would record in the trace. Choose Enforce and preview again to see what it would change."
	}
	for _, ch := range res.Changed {
		p.Changed = append(p.Changed, web.PreviewChange{
			MessageID: ch.MessageID, Recipient: ch.Recipient,
			Before: routeWords(ch.Before), After: routeWords(ch.After), Rejected: ch.After.Rejected,
		})
	}
	return p, nil
}

// routeWords tells where a recipient goes on one side of a preview: the
// connector (MX when none), rejected or deferred, and the rule that
// decided it, if one did.
func routeWords(rt preview.Route) string {
	var s string
	switch {
	case rt.Rejected:
		s = "rejected"
	case rt.Deferred:
		s = "deferred (451 4.4.0)"
	case rt.Connector != nil:
		s = "“" + *rt.Connector + "”"
	default:
		s = "by MX"
	}
	if rt.Rule != nil {
		s += ", by the rule “" + *rt.Rule + "”"
	}
	return s
}
