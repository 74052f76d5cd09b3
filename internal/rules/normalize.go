package rules

import (
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/flowgate/flowgate/internal/connector"
)

// compileRegexp is regexp.Compile; tests count the calls through it.
var compileRegexp = regexp.Compile

// Normalize canonicalizes the rule in place and returns what is wrong with
// it; nil means the rule is valid. It fills the defaults (mode
// enforce, on_error defer, the reject defaults), lowercases addresses and
// domains, writes IP ranges and header names in their canonical form,
// drops duplicate list entries, trims names, words and texts, and converts
// dates to UTC. It never writes through the slices or pointers it was
// given: a Rule shared with others can be normalized as a copy.
//
// Normalize cannot check that route_to_outbound_connector names an
// existing outbound connector, nor that the name and priority are unique:
// the store does.
func (r *Rule) Normalize() FieldErrors {
	errs := FieldErrors{}
	r.normalize(errs, nil, nil)
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// normalize does Normalize's work; the compiled header_matches patterns of
// the conditions and the exceptions are appended to condRE and excRE when
// they are not nil, so that Compile compiles each pattern once.
func (r *Rule) normalize(errs FieldErrors, condRE, excRE *[]*regexp.Regexp) {
	if r.ID < 0 {
		errs.add("id", "the id cannot be negative")
	}
	r.Name = strings.TrimSpace(r.Name)
	switch n := utf8.RuneCountInString(r.Name); {
	case n == 0:
		errs.add("name", "enter a name")
	case n > MaxNameLen:
		errs.add("name", "the name is %d characters long; at most %d are allowed", n, MaxNameLen)
	case strings.IndexFunc(r.Name, unicode.IsControl) >= 0:
		errs.add("name", "the name contains a control character")
	case !utf8.ValidString(r.Name):
		errs.add("name", "the name is not valid UTF-8")
	}
	if r.Priority != nil && *r.Priority < 0 {
		errs.add("priority", "the priority cannot be negative; 0 runs first")
	}
	switch r.Mode {
	case "":
		r.Mode = Enforce
	case Enforce, Audit:
	default:
		errs.add("mode", "%q is not a mode; choose enforce or audit", r.Mode)
	}
	r.Comment = strings.TrimSpace(r.Comment)
	if n := utf8.RuneCountInString(r.Comment); n > MaxCommentLen {
		errs.add("comment", "the comment is %d characters long; at most %d are allowed", n, MaxCommentLen)
	} else if !utf8.ValidString(r.Comment) {
		errs.add("comment", "the comment is not valid UTF-8")
	}
	r.ActivationDate = normalizeDate(r.ActivationDate, "activation_date", errs)
	r.ExpiryDate = normalizeDate(r.ExpiryDate, "expiry_date", errs)
	if r.ActivationDate != nil && r.ExpiryDate != nil && !r.ExpiryDate.After(*r.ActivationDate) {
		errs.add("expiry_date", "the expiry date must be after the activation date")
	}
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()

	r.Conditions.normalize("conditions", errs, condRE)
	if r.Conditions.empty() {
		errs.add("conditions", "a rule needs at least one condition")
	}
	r.Exceptions.normalize("exceptions", errs, excRE)
	r.Actions.normalize(errs)
	switch r.OnError {
	case "":
		r.OnError = Defer
	case Defer, Ignore:
	default:
		errs.add("on_error", "%q is not a choice; choose defer or ignore", r.OnError)
	}
}

func normalizeDate(t *time.Time, field string, errs FieldErrors) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	if y := u.Year(); y < 1970 || y > 9999 {
		errs.add(field, "enter a date between the years 1970 and 9999")
	}
	return &u
}

// empty reports whether no key is set (an empty but non-nil list counts as
// set: it is reported as an empty list).
func (p *Predicates) empty() bool {
	return p.SenderAddressIs == nil && p.SenderDomainIs == nil && p.RecipientAddressIs == nil &&
		p.RecipientDomainIs == nil && p.FromScope == "" && p.SentToScope == "" &&
		p.SenderIPRanges == nil && p.HeaderContains == nil && p.HeaderMatches == nil &&
		p.MessageSizeOver == nil && p.InboundConnectorIs == nil
}

func (p *Predicates) normalize(path string, errs FieldErrors, res *[]*regexp.Regexp) {
	at := func(key string) string { return path + "." + key }
	p.SenderAddressIs = normalizeList(p.SenderAddressIs, at("sender_address_is"), "address", errs, canonicalAddress)
	p.SenderDomainIs = normalizeList(p.SenderDomainIs, at("sender_domain_is"), "domain", errs, canonicalDomain)
	p.RecipientAddressIs = normalizeList(p.RecipientAddressIs, at("recipient_address_is"), "address", errs, canonicalAddress)
	p.RecipientDomainIs = normalizeList(p.RecipientDomainIs, at("recipient_domain_is"), "domain", errs, canonicalDomain)
	p.FromScope = normalizeScope(p.FromScope, at("from_scope"), errs)
	p.SentToScope = normalizeScope(p.SentToScope, at("sent_to_scope"), errs)
	p.SenderIPRanges = normalizeList(p.SenderIPRanges, at("sender_ip_ranges"), "IP address or range", errs, canonicalIPRange)
	p.InboundConnectorIs = normalizeList(p.InboundConnectorIs, at("inbound_connector_is"), "connector name", errs, canonicalConnectorName)
	if p.MessageSizeOver != nil && *p.MessageSizeOver < 0 {
		errs.add(at("message_size_over"), "the size cannot be negative; enter a number of bytes")
	}

	if p.HeaderContains != nil {
		key := at("header_contains")
		if checkListLen(len(p.HeaderContains), key, "entry", errs) {
			out := make([]HeaderWords, len(p.HeaderContains))
			for i, hw := range p.HeaderContains {
				item := fmt.Sprintf("%s[%d]", key, i)
				hw.Header = normalizeHeaderName(hw.Header, item+".header", errs)
				hw.Words = normalizeList(hw.Words, item+".words", "word", errs, canonicalWord)
				if hw.Words == nil {
					errs.add(item+".words", "enter at least one word")
				}
				out[i] = hw
			}
			p.HeaderContains = out
		}
	}
	if p.HeaderMatches != nil {
		key := at("header_matches")
		if checkListLen(len(p.HeaderMatches), key, "entry", errs) {
			out := make([]HeaderPattern, len(p.HeaderMatches))
			for i, hp := range p.HeaderMatches {
				item := fmt.Sprintf("%s[%d]", key, i)
				hp.Header = normalizeHeaderName(hp.Header, item+".header", errs)
				re, err := checkPattern(hp.Pattern)
				if err != nil {
					errs.add(item+".pattern", "%s", err.Error())
				} else if res != nil {
					*res = append(*res, re)
				}
				out[i] = hp
			}
			p.HeaderMatches = out
		}
	}
}

// checkListLen reports an empty or overlong list under key.
func checkListLen(n int, key, what string, errs FieldErrors) bool {
	switch {
	case n == 0:
		errs.add(key, "the list is empty: enter at least one %s, or leave the key out", what)
		return false
	case n > MaxListLen:
		errs.add(key, "at most %d entries are allowed", MaxListLen)
		return false
	}
	return true
}

// normalizeList canonicalizes every entry into a new list, dropping
// duplicates (order kept); a bad entry is reported under key[i]. A nil list
// stays nil.
func normalizeList(list []string, key, what string, errs FieldErrors, canon func(string) (string, error)) []string {
	if list == nil {
		return nil
	}
	if !checkListLen(len(list), key, what, errs) {
		return list
	}
	out := make([]string, 0, len(list))
	seen := make(map[string]bool, len(list))
	for i, raw := range list {
		v, err := canon(raw)
		if err != nil {
			errs.add(fmt.Sprintf("%s[%d]", key, i), "%s", err.Error())
			continue
		}
		if k := strings.ToLower(v); !seen[k] {
			seen[k] = true
			out = append(out, v)
		}
	}
	return out
}

func normalizeScope(s Scope, key string, errs FieldErrors) Scope {
	switch s {
	case "", InOrganization, NotInOrganization:
	default:
		errs.add(key, "%q is not a scope; choose in_organization or not_in_organization", s)
	}
	return s
}

// canonicalAddress parses an address with connector.ParseAddress and
// lowercases it whole: addresses match case-insensitively.
func canonicalAddress(s string) (string, error) {
	a, err := connector.ParseAddress(s)
	if err != nil {
		return "", err
	}
	lower := strings.ToLower(a.String())
	if b, err := connector.ParseAddress(lower); err != nil || b.String() != lower {
		return "", fmt.Errorf("%q cannot be matched without regard to case; write it in lowercase", strings.TrimSpace(s))
	}
	return lower, nil
}

// canonicalDomain parses a domain with connector.NormalizeDomain. A rule's
// domain already covers its subdomains, so "*." is refused with a hint.
func canonicalDomain(s string) (string, error) {
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "*.") {
		return "", fmt.Errorf("%q: leave out \"*.\"; %s already matches its subdomains", t, strings.TrimPrefix(t, "*."))
	}
	return connector.NormalizeDomain(s)
}

func canonicalIPRange(s string) (string, error) {
	spec, err := connector.ParseIPSpec(s)
	if err != nil {
		return "", err
	}
	return spec.String(), nil
}

func canonicalConnectorName(s string) (string, error) {
	t := strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(t); {
	case n == 0:
		return "", errors.New("the connector name is empty")
	case n > MaxNameLen:
		return "", fmt.Errorf("the connector name is %d characters long; connector names have at most %d", n, MaxNameLen)
	case strings.IndexFunc(t, unicode.IsControl) >= 0 || !utf8.ValidString(t):
		return "", fmt.Errorf("%q is not a connector name: it contains a control character", t)
	}
	return t, nil
}

func canonicalWord(s string) (string, error) {
	t := strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(t); {
	case n == 0:
		return "", errors.New("the word is empty")
	case n > MaxWordLen:
		return "", fmt.Errorf("the word is %d characters long; at most %d are allowed", n, MaxWordLen)
	case strings.ContainsAny(t, "\r\n"):
		return "", errors.New("the word contains a line break; a header value is matched after unfolding, on one line")
	case strings.IndexFunc(t, func(r rune) bool { return r != '\t' && unicode.IsControl(r) }) >= 0:
		return "", fmt.Errorf("%q contains a control character", t)
	case !utf8.ValidString(t):
		return "", errors.New("the word is not valid UTF-8")
	}
	return t, nil
}

// normalizeHeaderName checks an RFC 5322 field name (printable ASCII but
// ':') and gives it in canonical case, like X-Classification.
func normalizeHeaderName(s, key string, errs FieldErrors) string {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(t, ":")
	if t == "" {
		errs.add(key, "enter a header name, like X-Classification")
		return t
	}
	if len(t) > MaxHeaderNameLen {
		errs.add(key, "the header name is longer than %d characters", MaxHeaderNameLen)
		return t
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c < 33 || c > 126 || c == ':' {
			errs.add(key, "%q is not a header name: it may only have letters, digits and punctuation other than \":\"", t)
			return t
		}
	}
	return textproto.CanonicalMIMEHeaderKey(t)
}

// checkPattern compiles an RE2 pattern; a syntax error names the part of
// the pattern and its position in characters.
func checkPattern(p string) (*regexp.Regexp, error) {
	switch {
	case strings.TrimSpace(p) == "":
		return nil, errors.New("enter a pattern (RE2 syntax)")
	case len(p) > MaxPatternLen:
		return nil, fmt.Errorf("the pattern is longer than %d characters", MaxPatternLen)
	case strings.ContainsAny(p, "\r\n"):
		return nil, errors.New("the pattern contains a line break; a header value is matched after unfolding, on one line")
	case !utf8.ValidString(p):
		return nil, errors.New("the pattern is not valid UTF-8")
	}
	re, err := compileRegexp(p)
	if err == nil {
		return re, nil
	}
	var se *syntax.Error
	if errors.As(err, &se) {
		if i := strings.Index(p, se.Expr); i >= 0 && se.Expr != "" {
			return nil, fmt.Errorf("%s: `%s` at position %d", se.Code, se.Expr, utf8.RuneCountInString(p[:i]))
		}
		return nil, fmt.Errorf("%s: `%s`", se.Code, se.Expr)
	}
	return nil, err
}

func (a *Actions) normalize(errs FieldErrors) {
	switch {
	case a.RouteToOutboundConnector != nil && a.Reject != nil:
		errs.add("actions", "choose one action: route_to_outbound_connector or reject, not both")
	case a.RouteToOutboundConnector == nil && a.Reject == nil:
		errs.add("actions", "choose an action: route_to_outbound_connector or reject")
	}
	if id := a.RouteToOutboundConnector; id != nil && *id < 1 {
		errs.add("actions.route_to_outbound_connector", "enter the id of an outbound connector (a positive number)")
	}
	if a.Reject == nil {
		return
	}
	rj := *a.Reject
	if rj.Code == 0 {
		rj.Code = DefaultRejectCode
	}
	if rj.Code < 500 || rj.Code > 599 {
		errs.add("actions.reject.code", "%d is not a permanent failure code; enter a code from 500 to 599, like 550", rj.Code)
	}
	rj.Enhanced = strings.TrimSpace(rj.Enhanced)
	if rj.Enhanced == "" {
		rj.Enhanced = DefaultRejectEnhanced
	}
	if !validEnhanced(rj.Enhanced) {
		errs.add("actions.reject.enhanced", "%q is not an enhanced status code like 5.7.1", rj.Enhanced)
	} else if rj.Code >= 500 && rj.Code <= 599 && rj.Enhanced[0] != '5' {
		errs.add("actions.reject.enhanced", "%q does not fit the code %d: a permanent failure's enhanced code starts with 5, like 5.7.1", rj.Enhanced, rj.Code)
	}
	rj.Text = strings.TrimSpace(rj.Text)
	if rj.Text == "" {
		rj.Text = DefaultRejectText
	}
	switch {
	case strings.ContainsAny(rj.Text, "\r\n"):
		errs.add("actions.reject.text", "the text must be one line, without line breaks")
	case len(rj.Text) > MaxRejectTextLen:
		errs.add("actions.reject.text", "the text is %d characters long; at most %d are allowed", len(rj.Text), MaxRejectTextLen)
	case strings.IndexFunc(rj.Text, func(r rune) bool { return r != '\t' && (r < ' ' || r > '~') }) >= 0:
		errs.add("actions.reject.text", "the text may only have printable ASCII characters: SMTP replies are ASCII")
	}
	a.Reject = &rj
}

// validEnhanced checks an RFC 3463 status code class.subject.detail, the
// class 2, 4 or 5 and the others 0–999 without leading zeros.
func validEnhanced(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || strings.IndexByte("245", parts[0][0]) < 0 {
		return false
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}
