package relay

import "net/netip"

// Admission and stress. A listener full of connections that idle or
// trickle a byte now and then locks everybody else out, however short the
// timeouts, so two rules apply as the listener fills up:
//
//   - Stress (Postfix's "stress" mode): from stressOnPercent of the
//     connection limit until the count falls below stressOffPercent, a
//     client may wait only Config.StressTimeout (10 s by default, Postfix's
//     value) for each command line and each read of DATA, instead of
//     CommandTimeout and DataTimeout (5 and 10 minutes). Connections
//     already waiting when stress begins get the short timeout from then
//     on. Slots held by idle and slow clients come free within seconds.
//   - Fair share: from reservePercent of the limit, a new connection is
//     admitted only if its address holds less than its fair share, the
//     connections below the mark divided by the addresses connected
//     (the newcomer's included). A few addresses, however many
//     connections they open, cannot take the last slots: an address that
//     holds none always gets in while a slot is free.
//
// The share is of the mark, not of the connections in use: a share of the
// connections in use grows as they grow, so addresses that each keep
// opening connections would all stay just under it and fill every slot.
// With the mark, 20 addresses against a limit of 1,000 get 45 connections
// each once the relay is past 900 (more only if they had them before).
const (
	stressOnPercent  = 80 // stress begins when this share of the limit is in use…
	stressOffPercent = 70 // …and ends below this one, so it does not flap
	reservePercent   = 90 // above this share of the limit, only addresses below their fair share are admitted
)

// percentOf is p percent of n, rounded up.
func percentOf(n, p int) int { return (n*p + 99) / 100 }

// admit decides whether a connection from ip may have a slot; nil means
// yes. l.mu is held.
func (l *limitListener) admit(ip netip.Addr) *Reply {
	return admission(l.total, l.per[ip], len(l.per), l.max, l.perIP, l.reserveAt)
}

// admission is the rule for a new connection whose address holds held of
// the total connections, addrs addresses being connected: nil to admit,
// else the refusal.
func admission(total, held, addrs, max, perIP, reserveAt int) *Reply {
	switch {
	case total >= max:
		return &replyTooManyConns
	case held >= perIP:
		return &replyTooManyFromIP
	case total < reserveAt:
		return nil
	}
	if held == 0 {
		addrs++ // a newcomer shares too
	}
	if held*addrs >= reserveAt { // held >= reserveAt/addrs, in integers
		return &replyTooManyFromIP
	}
	return nil
}
