package queue

import "time"

// HandOverTo makes wk deliver, straight from memory, the messages w
// commits while wk has free delivery slots (no claim, no second read of
// the body), and wakes wk when w commits messages it leaves to the queue.
// Call it once, before w takes messages.
func (w *Writer) HandOverTo(wk *Workers) { w.local.Store(wk) }

// leaseFor reserves free delivery slots for the queued messages of a batch
// about to be committed, marks as many of them leased and returns the lease
// to insert them with (nil: none). The accepting process then delivers
// them straight from memory (handOver): no claim, no second read of the
// body. Messages beyond the free slots are queued unleased, for any
// process's claim. If this process dies, the leases expire and another
// process (or this one, restarted) claims the messages like any others.
func (wk *Workers) leaseFor(batch []request) *lease {
	wanted := 0
	for i := range batch {
		if batch[i].m.Status == Queued && batch[i].m.hasContent() {
			wanted++
		}
	}
	if wanted == 0 {
		return nil
	}
	parked := wk.parked()
	wk.mu.Lock()
	k := 0
	if wk.running {
		k = min(wanted, wk.cfg.Concurrency-len(wk.inFlight)-wk.reserved+parked)
	}
	if k > 0 {
		wk.reserved += k
	}
	wk.mu.Unlock()
	if k <= 0 {
		return nil
	}
	for i := range batch {
		if k > 0 && batch[i].m.Status == Queued && batch[i].m.hasContent() {
			batch[i].leased = true
			k--
		}
	}
	return &lease{owner: wk.owner, until: Micros(time.Now().Add(wk.cfg.Lease))}
}

// handOver gives a leased request's slot to its delivery once committed, or
// back when the commit failed.
func (wk *Workers) handOver(r *request, committed bool, ls *lease) {
	wk.mu.Lock()
	wk.reserved--
	if committed {
		wk.inFlight[r.id] = true
	}
	wk.mu.Unlock()
	if committed {
		wk.handedOver.Add(1)
		wk.direct <- r.job(ls) // never blocks: the job holds one of Concurrency slots
	} else {
		wk.capacityFreed()
	}
}

// job is the delivery job of a committed request: what a claim would have
// loaded from the database.
func (r *request) job(ls *lease) *job {
	j := &job{msg: r.row(Micros(time.Now()), ls), body: r.m.Body, chunks: r.m.Chunks}
	j.msg.ID = r.id
	j.rcpts = make([]*recipientRow, len(r.m.Recipients))
	for i, rc := range r.m.Recipients {
		j.rcpts[i] = &recipientRow{ID: r.rcptIDs[i], MessageID: r.id, Address: rc.Address, Status: rc.Status,
			ConnectorID: rc.ConnectorID, Connector: rc.Connector, RouteReason: rc.RouteReason, LastReply: rc.LastReply,
			Rule: rc.Rule.Rule, RuleConnectorID: rc.Rule.ConnectorID, RuleOnError: rc.Rule.OnError}
	}
	return j
}
