package rules

import (
	"math/bits"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gaissmai/bart"
)

// anchors files every valid rule under one key of its conditions, its
// anchor: a rule can only apply when its anchor holds, so Evaluate tests
// only the rules whose anchor a lookup finds, and the cost of a message
// depends on how many rules could apply to it, not on how many there are.
// The anchor is the first of a rule's condition keys in this order (the
// more selective first): recipient address, sender address, sender domain,
// recipient domain, inbound connector, sender IP, message size, header
// field name, sent_to_scope, from_scope. Lists hold rule indexes.
type anchors struct {
	recipientAddr, recipientDomain    map[string][]int32
	senderAddr, senderDomain, inbound map[string][]int32
	sentTo, from                      [2][]int32 // by scopeIndex
	header                            [][]int32  // by header index
	ip                                *bart.Table[[]int32]
	ipPrefixes                        map[netip.Prefix][]int32 // while compiling
	size                              []sizeAnchor             // by threshold, ascending
	always                            []int32                  // rules without an anchor (none, for valid rules)
}

type sizeAnchor struct {
	over int64
	rule int32
}

func newAnchors() anchors {
	return anchors{
		recipientAddr: map[string][]int32{}, recipientDomain: map[string][]int32{},
		senderAddr: map[string][]int32{}, senderDomain: map[string][]int32{}, inbound: map[string][]int32{},
		ipPrefixes: map[netip.Prefix][]int32{},
	}
}

// scopeIndex is 0 for in_organization, 1 for not_in_organization.
func scopeIndex(in bool) int {
	if in {
		return 0
	}
	return 1
}

// add files rule i, whose conditions are m.
func (a *anchors) add(i int32, m *matcher) {
	addAll := func(idx map[string][]int32, values set) {
		for v := range values {
			idx[v] = append(idx[v], i)
		}
	}
	switch {
	case m.recipientAddrs != nil:
		addAll(a.recipientAddr, m.recipientAddrs)
	case m.senderAddrs != nil:
		addAll(a.senderAddr, m.senderAddrs)
	case m.senderDomains != nil:
		addAll(a.senderDomain, m.senderDomains)
	case m.recipientDomains != nil:
		addAll(a.recipientDomain, m.recipientDomains)
	case m.inboundConnector != nil:
		addAll(a.inbound, m.inboundConnector)
	case len(m.ips) > 0:
		for _, r := range m.ips {
			for _, p := range r.Prefixes() {
				a.ipPrefixes[p] = append(a.ipPrefixes[p], i)
			}
		}
	case slices.Contains(m.keys, keyMessageSize):
		a.size = append(a.size, sizeAnchor{m.sizeOver, i})
	case m.contains != nil || m.matches != nil:
		var ids []int
		for _, t := range m.contains {
			ids = append(ids, t.header)
		}
		if m.contains == nil {
			for _, t := range m.matches {
				ids = append(ids, t.header)
			}
		}
		slices.Sort(ids)
		for _, id := range slices.Compact(ids) {
			for len(a.header) <= id {
				a.header = append(a.header, nil)
			}
			a.header[id] = append(a.header[id], i)
		}
	case m.sentToScope != "":
		k := scopeIndex(m.sentToScope == InOrganization)
		a.sentTo[k] = append(a.sentTo[k], i)
	case m.fromScope != "":
		k := scopeIndex(m.fromScope == InOrganization)
		a.from[k] = append(a.from[k], i)
	default:
		a.always = append(a.always, i)
	}
}

// finish builds the lookup structures once every rule is filed. In the IP
// table each prefix lists the rules of its supernets too, so that one
// longest-prefix lookup finds every rule with a range holding the address.
func (a *anchors) finish(headers int) {
	for len(a.header) < headers {
		a.header = append(a.header, nil)
	}
	sort.SliceStable(a.size, func(i, j int) bool { return a.size[i].over < a.size[j].over })
	if len(a.ipPrefixes) > 0 {
		raw := new(bart.Table[[]int32])
		for p, l := range a.ipPrefixes {
			raw.Insert(p, l)
		}
		a.ip = new(bart.Table[[]int32])
		for p, l := range a.ipPrefixes {
			all := slices.Clone(l)
			for _, v := range raw.Supernets(p) {
				all = append(all, v...)
			}
			slices.Sort(all)
			a.ip.Insert(p, slices.Compact(all))
		}
	}
	a.ipPrefixes = nil
}

// bitset holds rule indexes; walking it gives them in priority order.
type bitset []uint64

func (b bitset) set(i int32)      { b[i>>6] |= 1 << (uint(i) & 63) }
func (b bitset) clear(i int32)    { b[i>>6] &^= 1 << (uint(i) & 63) }
func (b bitset) has(i int32) bool { return b[i>>6]&(1<<(uint(i)&63)) != 0 }

func (b bitset) setAll(l []int32) {
	for _, i := range l {
		b.set(i)
	}
}

// setParents sets the rules filed under domain and its parent domains.
func (b bitset) setParents(idx map[string][]int32, domain string) {
	if len(idx) == 0 {
		return
	}
	for domain != "" {
		b.setAll(idx[domain])
		i := strings.IndexByte(domain, '.')
		if i < 0 {
			return
		}
		domain = domain[i+1:]
	}
}

// each calls fn for every rule in the set, in order, until fn says stop.
func (b bitset) each(fn func(i int32) bool) {
	for w, word := range b {
		for word != 0 {
			t := bits.TrailingZeros64(word)
			word &= word - 1
			if !fn(int32(w*64 + t)) {
				return
			}
		}
	}
}

// evaluation is Evaluate's state for one message: the candidate rules and
// the results of each rule's message keys, computed at most once per
// message however many recipients there are.
type evaluation struct {
	s   *Set
	now time.Time
	mf  *msgFacts
	// msg: the rules anchored on a message key whose message keys hold
	// and which are within their dates.
	msg                  bitset
	rcpt                 bitset // one recipient's candidates
	condKnown, condHolds bitset // the conditions' message keys
	excKnown, excHolds   bitset // the exceptions' message keys
}

// init prepares ev for one message: it finds the rules anchored on a
// message key that holds and drops those whose message keys do not all
// hold or which are outside their dates.
func (ev *evaluation) init(s *Set, now time.Time, mf *msgFacts) {
	w := (len(s.rules) + 63) / 64
	buf := make(bitset, 6*w)
	*ev = evaluation{s: s, now: now, mf: mf,
		msg: buf[:w:w], rcpt: buf[w : 2*w : 2*w],
		condKnown: buf[2*w : 3*w : 3*w], condHolds: buf[3*w : 4*w : 4*w],
		excKnown: buf[4*w : 5*w : 5*w], excHolds: buf[5*w:],
	}
	a := &s.anchors
	if mf.senderAddr != "" {
		ev.msg.setAll(a.senderAddr[mf.senderAddr])
	}
	ev.msg.setParents(a.senderDomain, mf.senderDomain)
	if mf.inbound != "" {
		ev.msg.setAll(a.inbound[mf.inbound])
	}
	if a.ip != nil && mf.clientIP.IsValid() {
		if l, ok := a.ip.Lookup(mf.clientIP); ok {
			ev.msg.setAll(l)
		}
	}
	for _, sa := range a.size {
		if mf.size <= sa.over {
			break
		}
		ev.msg.set(sa.rule)
	}
	for id, f := range mf.fields {
		if len(f) > 0 {
			ev.msg.setAll(a.header[id])
		}
	}
	ev.msg.setAll(a.from[scopeIndex(mf.fromOrganization)])
	ev.msg.setAll(a.always)
	ev.msg.each(func(j int32) bool {
		if !s.rules[j].rule.ActiveAt(now) || !ev.conditionsHold(j) {
			ev.msg.clear(j)
		}
		return true
	})
}

// candidates calls fn, in priority order, for the rules that may apply to
// a recipient, until fn says stop.
func (ev *evaluation) candidates(rf *rcptFacts, fn func(j int32) bool) {
	copy(ev.rcpt, ev.msg)
	a := &ev.s.anchors
	ev.rcpt.setAll(a.recipientAddr[rf.addr])
	ev.rcpt.setParents(a.recipientDomain, rf.domain)
	ev.rcpt.setAll(a.sentTo[scopeIndex(rf.inOrganization)])
	ev.rcpt.each(fn)
}

// matches reports whether rule j applies to the recipient: its conditions
// hold and none of its exceptions does. Dates are the caller's.
func (ev *evaluation) matches(j int32, rf *rcptFacts) bool {
	c := &ev.s.rules[j]
	return c.cond.allHold(c.cond.keys[:c.cond.recipientKeys], ev.mf, rf) && ev.conditionsHold(j) &&
		!c.exc.anyHolds(c.exc.keys[:c.exc.recipientKeys], ev.mf, rf) && !ev.exceptionHolds(j)
}

// conditionsHold reports whether the message keys of rule j's conditions
// all hold.
func (ev *evaluation) conditionsHold(j int32) bool {
	if ev.condKnown.has(j) {
		return ev.condHolds.has(j)
	}
	c := &ev.s.rules[j]
	ok := c.cond.allHold(c.cond.keys[c.cond.recipientKeys:], ev.mf, nil)
	ev.condKnown.set(j)
	if ok {
		ev.condHolds.set(j)
	}
	return ok
}

// exceptionHolds reports whether a message key of rule j's exceptions
// holds.
func (ev *evaluation) exceptionHolds(j int32) bool {
	if ev.excKnown.has(j) {
		return ev.excHolds.has(j)
	}
	c := &ev.s.rules[j]
	ok := c.exc.anyHolds(c.exc.keys[c.exc.recipientKeys:], ev.mf, nil)
	ev.excKnown.set(j)
	if ok {
		ev.excHolds.set(j)
	}
	return ok
}
