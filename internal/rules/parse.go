package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Parse decodes a rule from a JSON body (the SPEC 7 shape) and normalizes
// it. Decoding is strict: unknown or repeated keys, wrong JSON types and
// trailing data are field errors, keyed by JSON path like Normalize's. An
// absent "enabled" means true; an absent or null "priority" means last
// (Priority nil). No errors is nil. The Rule is returned even with errors,
// so that a form can be shown again, but only an error-free Rule may be
// stored.
func Parse(body []byte) (Rule, FieldErrors) {
	r := Rule{Enabled: true}
	if len(bytes.TrimSpace(body)) == 0 {
		return r, FieldErrors{"": "the body is empty; send a rule as a JSON object"}
	}
	var raw json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return r, FieldErrors{"": fmt.Sprintf("the body is not valid JSON: %s (at byte %d)", strings.TrimPrefix(se.Error(), "json: "), se.Offset)}
		}
		return r, FieldErrors{"": "the body is not valid JSON"}
	}
	if kindOf(raw) != '{' {
		return r, FieldErrors{"": "the body must be a JSON object: a rule"}
	}
	d := decoder{errs: FieldErrors{}}
	d.rule(raw, &r)

	norm := FieldErrors{}
	r.normalize(norm, nil, nil)
	for k, v := range norm {
		if !d.covers(k) {
			d.errs[k] = v
		}
	}
	if len(d.errs) == 0 {
		return r, nil
	}
	return r, d.errs
}

// covers reports whether a decoding error already explains a problem
// Normalize found at key: the same field, a field inside it or the field
// it is in (a list whose entry had the wrong type may look empty).
func (d *decoder) covers(key string) bool {
	for k := range d.errs {
		if k == key || nested(key, k) || nested(k, key) {
			return true
		}
	}
	return false
}

// nested reports whether inner is a path inside outer.
func nested(inner, outer string) bool {
	rest, ok := strings.CutPrefix(inner, outer)
	return ok && rest != "" && (rest[0] == '.' || rest[0] == '[')
}

// decoder reads JSON values into a rule, reporting problems by path.
type decoder struct{ errs FieldErrors }

var (
	ruleKeys = []string{"id", "name", "priority", "enabled", "mode", "comment", "activation_date",
		"expiry_date", "conditions", "exceptions", "actions", "on_error", "created_at", "updated_at"}
	predicateKeys = []string{"sender_address_is", "sender_domain_is", "recipient_address_is",
		"recipient_domain_is", "from_scope", "sent_to_scope", "sender_ip_ranges", "header_contains",
		"header_matches", "message_size_over", "inbound_connector_is"}
	actionKeys        = []string{"route_to_outbound_connector", "reject", "stop_processing"}
	rejectKeys        = []string{"code", "enhanced", "text"}
	headerWordsKeys   = []string{"header", "words"}
	headerPatternKeys = []string{"header", "pattern"}
)

func (d *decoder) rule(raw json.RawMessage, r *Rule) {
	d.object("", raw, ruleKeys, func(key, path string, v json.RawMessage) {
		switch key {
		case "id":
			if n, ok := d.integer(path, v); ok {
				r.ID = n
			}
		case "name":
			r.Name = d.str(path, v)
		case "priority":
			if n, ok := d.integer(path, v); ok {
				if n > math.MaxInt32 {
					d.errs.add(path, "the priority is too large")
				} else {
					p := int(n)
					r.Priority = &p
				}
			}
		case "enabled":
			if b, ok := d.boolean(path, v); ok {
				r.Enabled = b
			}
		case "mode":
			r.Mode = Mode(d.str(path, v))
		case "comment":
			r.Comment = d.str(path, v)
		case "activation_date":
			r.ActivationDate = d.date(path, v)
		case "expiry_date":
			r.ExpiryDate = d.date(path, v)
		case "conditions":
			d.predicates(path, v, &r.Conditions)
		case "exceptions":
			d.predicates(path, v, &r.Exceptions)
		case "actions":
			d.actions(path, v, &r.Actions)
		case "on_error":
			r.OnError = OnError(d.str(path, v))
		case "created_at":
			if t := d.date(path, v); t != nil {
				r.CreatedAt = *t
			}
		case "updated_at":
			if t := d.date(path, v); t != nil {
				r.UpdatedAt = *t
			}
		}
	})
}

func (d *decoder) predicates(path string, raw json.RawMessage, p *Predicates) {
	d.object(path, raw, predicateKeys, func(key, path string, v json.RawMessage) {
		switch key {
		case "sender_address_is":
			p.SenderAddressIs = d.strList(path, v)
		case "sender_domain_is":
			p.SenderDomainIs = d.strList(path, v)
		case "recipient_address_is":
			p.RecipientAddressIs = d.strList(path, v)
		case "recipient_domain_is":
			p.RecipientDomainIs = d.strList(path, v)
		case "from_scope":
			p.FromScope = Scope(d.str(path, v))
		case "sent_to_scope":
			p.SentToScope = Scope(d.str(path, v))
		case "sender_ip_ranges":
			p.SenderIPRanges = d.strList(path, v)
		case "inbound_connector_is":
			p.InboundConnectorIs = d.strList(path, v)
		case "message_size_over":
			if n, ok := d.integer(path, v); ok {
				p.MessageSizeOver = &n
			}
		case "header_contains":
			d.list(path, v, "a list of {\"header\", \"words\"} objects", func(item string, v json.RawMessage) {
				var hw HeaderWords
				d.notNull(item, v)
				d.object(item, v, headerWordsKeys, func(key, path string, v json.RawMessage) {
					if key == "header" {
						hw.Header = d.str(path, v)
					} else {
						hw.Words = d.strList(path, v)
					}
				})
				p.HeaderContains = append(p.HeaderContains, hw)
			}, func() { p.HeaderContains = []HeaderWords{} })
		case "header_matches":
			d.list(path, v, "a list of {\"header\", \"pattern\"} objects", func(item string, v json.RawMessage) {
				var hp HeaderPattern
				d.notNull(item, v)
				d.object(item, v, headerPatternKeys, func(key, path string, v json.RawMessage) {
					if key == "header" {
						hp.Header = d.str(path, v)
					} else {
						hp.Pattern = d.str(path, v)
					}
				})
				p.HeaderMatches = append(p.HeaderMatches, hp)
			}, func() { p.HeaderMatches = []HeaderPattern{} })
		}
	})
}

func (d *decoder) actions(path string, raw json.RawMessage, a *Actions) {
	d.object(path, raw, actionKeys, func(key, path string, v json.RawMessage) {
		switch key {
		case "route_to_outbound_connector":
			if n, ok := d.integer(path, v); ok {
				a.RouteToOutboundConnector = &n
			}
		case "reject":
			if kindOf(v) == 'n' {
				return
			}
			rj := Reject{}
			if d.object(path, v, rejectKeys, func(key, path string, v json.RawMessage) {
				switch key {
				case "code":
					// An explicit code is checked here: Normalize takes 0 as "the default".
					if n, ok := d.integer(path, v); ok {
						if n < 500 || n > 599 {
							d.errs.add(path, "%d is not a permanent failure code; enter a code from 500 to 599, like 550", n)
						} else {
							rj.Code = int(n)
						}
					}
				case "enhanced":
					rj.Enhanced = d.str(path, v)
				case "text":
					rj.Text = d.str(path, v)
				}
			}) {
				a.Reject = &rj
			}
		case "stop_processing":
			if b, ok := d.boolean(path, v); ok {
				a.StopProcessing = b
			}
		}
	})
}

// kindOf tells a JSON value's type by its first byte: '{', '[', '"', 't'
// or 'f', 'n', or '0' for a number.
func kindOf(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	switch c := raw[0]; c {
	case '{', '[', '"', 't', 'f', 'n':
		return c
	}
	return '0'
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// object walks the members of a JSON object in order, calling set for
// each known key. Unknown and repeated keys are errors. It reports false
// when raw is null or not an object (the latter an error).
func (d *decoder) object(path string, raw json.RawMessage, known []string, set func(key, path string, v json.RawMessage)) bool {
	switch kindOf(raw) {
	case 'n':
		return false
	case '{':
	default:
		d.typeErr(path, "an object")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // the '{'; raw is valid JSON
		d.typeErr(path, "an object")
		return false
	}
	seen := make(map[string]bool, len(known))
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		var v json.RawMessage
		if err != nil || !ok || dec.Decode(&v) != nil {
			d.typeErr(path, "an object")
			return false
		}
		p := join(path, key)
		switch {
		case seen[key]:
			d.errs.add(p, "the key %q appears twice", key)
		case !slices.Contains(known, key):
			d.errs.add(p, "unknown key %q; the keys here are %s", key, strings.Join(known, ", "))
		default:
			set(key, p, v)
		}
		seen[key] = true
	}
	return true
}

// list walks a JSON array, calling item for each element with its path;
// empty is called for an empty array. null is no list.
func (d *decoder) list(path string, raw json.RawMessage, what string, item func(path string, v json.RawMessage), empty func()) {
	switch kindOf(raw) {
	case 'n':
		return
	case '[':
	default:
		d.typeErr(path, what)
		return
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		d.typeErr(path, what)
		return
	}
	if len(elems) == 0 {
		empty()
		return
	}
	for i, v := range elems {
		item(fmt.Sprintf("%s[%d]", path, i), v)
	}
}

// notNull reports a null list entry, which object takes as absent.
func (d *decoder) notNull(path string, raw json.RawMessage) {
	if kindOf(raw) == 'n' {
		d.typeErr(path, "an object")
	}
}

func (d *decoder) typeErr(path, what string) {
	d.errs.add(path, "must be %s", what)
}

// str reads a string; null is "".
func (d *decoder) str(path string, raw json.RawMessage) string {
	switch kindOf(raw) {
	case 'n':
		return ""
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	d.typeErr(path, "a string")
	return ""
}

// strList reads a list of strings; null is nil, [] an empty list. A
// non-string entry is reported and kept as "" so that indexes match.
func (d *decoder) strList(path string, raw json.RawMessage) []string {
	var out []string
	d.list(path, raw, "a list of strings", func(item string, v json.RawMessage) {
		if kindOf(v) != '"' {
			d.typeErr(item, "a string")
			out = append(out, "")
			return
		}
		out = append(out, d.str(item, v))
	}, func() { out = []string{} })
	return out
}

// integer reads a whole number; false for null or an error.
func (d *decoder) integer(path string, raw json.RawMessage) (int64, bool) {
	switch kindOf(raw) {
	case 'n':
		return 0, false
	case '0':
	default:
		d.typeErr(path, "a whole number")
		return 0, false
	}
	text := string(bytes.TrimSpace(raw))
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			d.errs.add(path, "%s is too large", text)
		} else {
			d.typeErr(path, "a whole number")
		}
		return 0, false
	}
	return n, true
}

// boolean reads true or false; false for null or an error.
func (d *decoder) boolean(path string, raw json.RawMessage) (bool, bool) {
	switch kindOf(raw) {
	case 'n':
		return false, false
	case 't', 'f':
		return kindOf(raw) == 't', true
	}
	d.typeErr(path, "true or false")
	return false, false
}

// date reads an RFC 3339 date-time; null and "" are no date.
func (d *decoder) date(path string, raw json.RawMessage) *time.Time {
	k := kindOf(raw)
	if k == 'n' {
		return nil
	}
	if k != '"' {
		d.typeErr(path, "a date and time like 2025-03-01T09:00:00Z, or null")
		return nil
	}
	s := strings.TrimSpace(d.str(path, raw))
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		d.errs.add(path, "%q is not a date and time in RFC 3339 form, like 2025-03-01T09:00:00Z or 2025-03-01T09:00:00+01:00", s)
		return nil
	}
	return &t
}
