package rules

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/flowgate/flowgate/internal/connector"
)

// key is one predicate key. The order of the constants is the order in
// which a matcher tests its keys: the recipient keys first (they differ
// per recipient), then the message keys, cheap ones first and header
// fields last.
type key uint8

const (
	keyRecipientAddress key = iota
	keyRecipientDomain
	keySentToScope
	keySenderAddress
	keySenderDomain
	keyFromScope
	keyInboundConnector
	keyMessageSize
	keySenderIP
	keyHeaderContains
	keyHeaderMatches
)

// isRecipientKey reports whether k looks at the recipient.
func isRecipientKey(k key) bool { return k <= keySentToScope }

var keyNames = [...]string{
	keyRecipientAddress: "recipient_address_is",
	keyRecipientDomain:  "recipient_domain_is",
	keySentToScope:      "sent_to_scope",
	keySenderAddress:    "sender_address_is",
	keySenderDomain:     "sender_domain_is",
	keyFromScope:        "from_scope",
	keyInboundConnector: "inbound_connector_is",
	keyMessageSize:      "message_size_over",
	keySenderIP:         "sender_ip_ranges",
	keyHeaderContains:   "header_contains",
	keyHeaderMatches:    "header_matches",
}

type set map[string]struct{}

func newSet(values []string) set {
	s := make(set, len(values))
	for _, v := range values {
		s[strings.ToLower(v)] = struct{}{}
	}
	return s
}

// domain returns the listed domain that is d or a parent of d.
func (s set) domain(d string) (string, bool) {
	for d != "" {
		if _, ok := s[d]; ok {
			return d, true
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			break
		}
		d = d[i+1:]
	}
	return "", false
}

// matcher is the compiled form of Predicates.
type matcher struct {
	keys                                         []key // the keys set, in test order
	recipientKeys                                int   // how many of keys, at the front, are recipient keys
	recipientAddrs, recipientDomains             set
	senderAddrs, senderDomains, inboundConnector set
	fromScope, sentToScope                       Scope
	sizeOver                                     int64
	ips                                          []connector.IPSpec
	contains                                     []containsTest
	matches                                      []matchTest
	containsFields, matchesFields                string // "X-A or X-B", for explanations
}

type containsTest struct {
	header int    // index into the Set's header names
	name   string // as the rule writes it
	words  []string
	lower  []string // words, lowercased once
}

type matchTest struct {
	header  int
	name    string
	pattern *regexp.Regexp // compiled once, by Compile
	// prefix is the pattern's literal prefix, which every match begins
	// with: a value without it cannot match, and strings.Contains says
	// so faster than the regexp.
	prefix string
}

// msgFacts is what the keys about the message look at, computed once per
// message.
type msgFacts struct {
	senderAddr, senderDomain string // canonical; empty for the null sender
	inbound                  string // lowercased
	clientIP                 netip.Addr
	fromOrganization         bool
	size                     int64
	headersKept              bool
	fields                   [][]field // decoded fields by header index
}

type field struct {
	value   string
	lower   string
	lowered bool
}

func (f *field) lowerValue() string {
	if !f.lowered {
		f.lower, f.lowered = strings.ToLower(f.value), true
	}
	return f.lower
}

// rcptFacts is what the recipient keys look at.
type rcptFacts struct {
	addr, domain   string
	inOrganization bool
}

// all reports whether every key holds. With explain it also says which
// values matched, or why the first key that failed did not hold.
func (m *matcher) all(mf *msgFacts, rf *rcptFacts, explain bool) (bool, string) {
	var held []string
	for _, k := range m.keys {
		ok, why := m.explainKey(k, mf, rf, explain)
		if !ok {
			return false, why
		}
		if explain {
			held = append(held, why)
		}
	}
	return true, strings.Join(held, "; ")
}

// any reports whether some key holds, and with explain which one.
func (m *matcher) any(mf *msgFacts, rf *rcptFacts, explain bool) (bool, string) {
	for _, k := range m.keys {
		if ok, why := m.explainKey(k, mf, rf, explain); ok {
			return true, why
		}
	}
	return false, ""
}

// allHold reports whether every one of keys holds.
func (m *matcher) allHold(keys []key, mf *msgFacts, rf *rcptFacts) bool {
	for _, k := range keys {
		if !m.holds(k, mf, rf) {
			return false
		}
	}
	return true
}

// anyHolds reports whether one of keys holds.
func (m *matcher) anyHolds(keys []key, mf *msgFacts, rf *rcptFacts) bool {
	for _, k := range keys {
		if m.holds(k, mf, rf) {
			return true
		}
	}
	return false
}

// holds evaluates one key; rf may be nil for a message key. It is the
// only place where a key is decided: explainKey asks it too.
func (m *matcher) holds(k key, mf *msgFacts, rf *rcptFacts) bool {
	switch k {
	case keyRecipientAddress:
		_, ok := m.recipientAddrs[rf.addr]
		return ok
	case keyRecipientDomain:
		_, ok := m.recipientDomains.domain(rf.domain)
		return ok
	case keySentToScope:
		return (m.sentToScope == InOrganization) == rf.inOrganization
	case keySenderAddress:
		_, ok := m.senderAddrs[mf.senderAddr]
		return ok && mf.senderAddr != ""
	case keySenderDomain:
		_, ok := m.senderDomains.domain(mf.senderDomain)
		return ok
	case keyFromScope:
		return (m.fromScope == InOrganization) == mf.fromOrganization
	case keyInboundConnector:
		_, ok := m.inboundConnector[mf.inbound]
		return ok && mf.inbound != ""
	case keyMessageSize:
		return mf.size > m.sizeOver
	case keySenderIP:
		_, ok := m.ipRange(mf.clientIP)
		return ok
	case keyHeaderContains:
		_, _, ok := m.containing(mf)
		return ok
	case keyHeaderMatches:
		_, ok := m.matching(mf)
		return ok
	}
	return false
}

// ipRange returns the range that holds ip.
func (m *matcher) ipRange(ip netip.Addr) (connector.IPSpec, bool) {
	if ip.IsValid() {
		for _, r := range m.ips {
			if r.Contains(ip) {
				return r, true
			}
		}
	}
	return connector.IPSpec{}, false
}

// containing returns the header_contains entry and the word found.
func (m *matcher) containing(mf *msgFacts) (*containsTest, int, bool) {
	for i := range m.contains {
		t := &m.contains[i]
		fields := mf.fieldsOf(t.header)
		for j := range fields {
			v := fields[j].lowerValue()
			for w, word := range t.lower {
				if strings.Contains(v, word) {
					return t, w, true
				}
			}
		}
	}
	return nil, 0, false
}

// matching returns the header_matches entry whose pattern matched.
func (m *matcher) matching(mf *msgFacts) (*matchTest, bool) {
	for i := range m.matches {
		t := &m.matches[i]
		for _, f := range mf.fieldsOf(t.header) {
			if (t.prefix == "" || strings.Contains(f.value, t.prefix)) && t.pattern.MatchString(f.value) {
				return t, true
			}
		}
	}
	return nil, false
}

// explainKey evaluates one key with holds and, with explain, says what
// matched or why it did not hold.
func (m *matcher) explainKey(k key, mf *msgFacts, rf *rcptFacts, explain bool) (bool, string) {
	ok := m.holds(k, mf, rf)
	if !explain {
		return ok, ""
	}
	name := keyNames[k]
	switch k {
	case keyRecipientAddress:
		if ok {
			return true, name + " matched " + rf.addr
		}
		return false, fmt.Sprintf("%s: the recipient %s is not listed", name, rf.addr)
	case keyRecipientDomain:
		if d, ok := m.recipientDomains.domain(rf.domain); ok {
			return true, name + " matched " + d
		}
		return false, fmt.Sprintf("%s: the recipient's domain %q is not listed, nor a subdomain of one listed", name, rf.domain)
	case keySentToScope:
		if rf.inOrganization {
			return ok, name + ": the recipient is in the organization (an accepted domain)"
		}
		return ok, name + ": the recipient is not in the organization"
	case keySenderAddress:
		switch {
		case ok:
			return true, name + " matched " + mf.senderAddr
		case mf.senderAddr == "":
			return false, name + ": the message has a null sender"
		}
		return false, fmt.Sprintf("%s: the sender %s is not listed", name, mf.senderAddr)
	case keySenderDomain:
		if d, ok := m.senderDomains.domain(mf.senderDomain); ok {
			return true, name + " matched " + d
		}
		if mf.senderAddr == "" {
			return false, name + ": the message has a null sender"
		}
		return false, fmt.Sprintf("%s: the sender's domain %q is not listed, nor a subdomain of one listed", name, mf.senderDomain)
	case keyFromScope:
		if mf.fromOrganization {
			return ok, name + ": the sender is in the organization (the message came through an on_premises connector)"
		}
		return ok, name + ": the sender is not in the organization"
	case keyInboundConnector:
		switch {
		case ok:
			return true, fmt.Sprintf("%s matched %q", name, mf.inbound)
		case mf.inbound == "":
			return false, name + ": the message came through no inbound connector"
		}
		return false, fmt.Sprintf("%s: the message came through %q, which is not listed", name, mf.inbound)
	case keyMessageSize:
		if ok {
			return true, fmt.Sprintf("%s: the message is %d bytes, over %d", name, mf.size, m.sizeOver)
		}
		return false, fmt.Sprintf("%s: the message is %d bytes, not over %d", name, mf.size, m.sizeOver)
	case keySenderIP:
		if r, ok := m.ipRange(mf.clientIP); ok {
			return true, fmt.Sprintf("%s: the client %s is in %s", name, mf.clientIP, r)
		}
		if !mf.clientIP.IsValid() {
			return false, name + ": the client's IP address is not known"
		}
		return false, fmt.Sprintf("%s: the client %s is in none of the ranges", name, mf.clientIP)
	case keyHeaderContains:
		if t, w, ok := m.containing(mf); ok {
			return true, fmt.Sprintf("%s: %s contains %q", name, t.name, t.words[w])
		}
		return false, headerMiss(name, m.containsFields, "contains any of the words", mf)
	case keyHeaderMatches:
		if t, ok := m.matching(mf); ok {
			return true, fmt.Sprintf("%s: %s matches %s", name, t.name, t.pattern)
		}
		return false, headerMiss(name, m.matchesFields, "matches its pattern", mf)
	}
	return ok, name
}

func (mf *msgFacts) fieldsOf(header int) []field {
	if header >= len(mf.fields) {
		return nil
	}
	return mf.fields[header]
}

// headerMiss explains why a header key did not hold; fields names the
// header fields the key looks at ("X-A or X-B").
func headerMiss(name, fields, what string, mf *msgFacts) string {
	if !mf.headersKept {
		return name + ": the message's header section is not available"
	}
	return fmt.Sprintf("%s: no %s field %s", name, fields, what)
}

// envelopeAddress gives the canonical form of an envelope address and its
// domain: lowercase, the domain in punycode without a trailing dot. The
// null sender ("" or "<>") gives two empty strings; an address without
// '@' (like "postmaster") has no domain.
func envelopeAddress(s string) (addr, domain string) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		s = s[1 : len(s)-1]
	}
	if s == "" {
		return "", ""
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return strings.ToLower(s), ""
	}
	if isCanonicalASCII(s) && !strings.HasSuffix(s, ".") {
		return s, s[at+1:]
	}
	domain = lookupDomain(s[at+1:])
	return strings.ToLower(s[:at]) + "@" + domain, domain
}

// lookupDomain is the canonical form of a domain from a message, for
// lookups: lowercase, punycode, no trailing dot. A name that is not a
// valid domain is only lowercased; it then matches nothing a rule lists.
func lookupDomain(d string) string {
	d = strings.TrimSuffix(d, ".")
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			if n, err := connector.NormalizeDomain(d); err == nil {
				return n
			}
			return strings.ToLower(d)
		}
	}
	return strings.ToLower(d)
}

func isCanonicalASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || c >= 'A' && c <= 'Z' {
			return false
		}
	}
	return true
}
