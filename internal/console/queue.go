package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/web"
)

// queuePageSize is how many waiting messages one page lists.
const queuePageSize = 50

// WithQueue gives the console the queue's controls; without them the
// queue page shows the queue but no actions work.
func (c *Console) WithQueue(ctl *queue.Control) *Console {
	c.queue = ctl
	return c
}

// queuePage is GET /queue?connector=ID|mx&after=N: the waiting mail per
// connector and next hop with hold, release and re-route, and the waiting
// messages, oldest first, with retry, bounce and delete.
func (c *Console) queuePage(w http.ResponseWriter, r *http.Request) {
	if c.queue == nil {
		c.errorPage(w, r, http.StatusServiceUnavailable, "The queue is not available in this process.")
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	filter := strings.TrimSpace(q.Get("connector"))
	connID := int64(-1)
	switch filter {
	case "":
	case "mx":
		connID = 0
	default:
		id, err := strconv.ParseInt(filter, 10, 64)
		if err != nil || id < 1 {
			c.notFound(w, r)
			return
		}
		connID = id
	}
	after, ok := parseID(q.Get("after"))
	if !ok {
		c.notFound(w, r)
		return
	}
	sum, err := c.queue.Summarize(ctx)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	p := web.QueuePage{Page: c.page(w, r, "Queue", "queue"), Total: sum.Total, Filter: filter, Back: r.URL.RequestURI()}
	lifetime := c.queue.Lifetime()
	heldNames := map[string]bool{}
	for _, row := range sum.Connectors {
		v := web.QueueRow{ConnectorID: row.ConnectorID, NextHop: row.NextHop, Queued: row.Queued, Deferred: row.Deferred, Held: row.Held,
			Oldest: row.OldestAt, LastError: row.LastError, HeldSince: row.HeldSince, HeldBy: row.HeldBy, Messages: "/queue?connector=mx"}
		if row.Connector != nil {
			v.Connector = *row.Connector
			v.Href = fmt.Sprintf("/connectors/outbound/%d", row.ConnectorID)
			v.Messages = fmt.Sprintf("/queue?connector=%d", row.ConnectorID)
			if row.ConnectorID == connID {
				p.FilterName = v.Connector
			}
		} else if connID == 0 {
			p.FilterName = "without a connector (MX)"
		}
		if row.HeldSince != nil {
			heldNames[v.Connector] = true
		}
		if row.Held > 0 && row.ExpiresAt != nil && time.Until(*row.ExpiresAt) < lifetime/4 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("Held mail of %s reaches the queue lifetime (%s) at %s and then bounces to its senders: release the connector or re-route its mail before then.",
				v.Connector, lifetime, web.When(*row.ExpiresAt)))
		}
		p.Rows = append(p.Rows, v)
	}
	list, next, err := queue.ListWaiting(ctx, c.store, connID, after, queuePageSize)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	for _, m := range list {
		v := web.QueueMessage{UID: m.UID, Href: "/trace/" + url.PathEscape(m.UID), ReceivedAt: m.ReceivedAt, Sender: m.Sender,
			Status: string(m.Status), Attempts: m.Attempts, Next: m.NextAttemptAt, Expires: m.ExpiresAt, InFlight: m.InFlight}
		for _, rc := range m.Recipients {
			if rc.Status != queue.Queued && rc.Status != queue.Deferred {
				continue
			}
			v.Recipients = append(v.Recipients, web.QueueRecipient{Address: rc.Address, Status: string(rc.Status), Connector: rc.Connector, LastReply: rc.LastReply})
		}
		v.Held = len(v.Recipients) > 0
		for _, rc := range v.Recipients {
			v.Held = v.Held && heldNames[rc.Connector]
		}
		p.Messages = append(p.Messages, v)
	}
	link := func(after int64) string {
		v := url.Values{}
		if filter != "" {
			v.Set("connector", filter)
		}
		if after > 0 {
			v.Set("after", strconv.FormatInt(after, 10))
		}
		if len(v) == 0 {
			return "/queue"
		}
		return "/queue?" + v.Encode()
	}
	if next > 0 {
		p.More = link(next)
	}
	if after > 0 {
		p.First = link(0)
	}
	c.render(w, r, http.StatusOK, web.QueueView(p))
}

// queueBack is where a queue action returns: the page it was sent from.
func queueBack(r *http.Request) string {
	back := localPath(r.PostFormValue("back"))
	if back != "/queue" && !strings.HasPrefix(back, "/queue?") && !strings.HasPrefix(back, "/trace/") {
		return "/queue"
	}
	return back
}

// queueRefused turns a refused queue action into a warning on the page.
func (c *Console) queueRefused(w http.ResponseWriter, r *http.Request, back, uid string, err error) {
	var fin *queue.FinishedError
	switch {
	case errors.Is(err, queue.ErrNoMessage):
		c.flashWarning(w, r, "Message "+uid+" is no longer in the queue: it was delivered and its trace expired, or it was deleted.")
	case errors.As(err, &fin):
		c.flashWarning(w, r, fmt.Sprintf("Message %s is %s already: only waiting (queued or deferred) messages can be retried, bounced or deleted.", uid, fin.Status))
	case errors.Is(err, queue.ErrInFlight):
		c.flashWarning(w, r, "Message "+uid+" is being delivered right now, so it was left alone. Try again when this attempt has ended; its trace shows the attempt.")
	default:
		c.storeError(w, r, err)
		return
	}
	seeOther(w, r, back)
}

// holdConnector is POST /queue/connectors/{id}/hold and .../release.
func (c *Console) holdConnector(hold bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathInt(r, "id")
		if !ok || c.queue == nil {
			c.notFound(w, r)
			return
		}
		back := queueBack(r)
		act, msg := c.queue.Release, "Connector %q is released: its waiting mail is being delivered now."
		if hold {
			act, msg = c.queue.Hold, "Connector %q is on hold: its mail is accepted and queued, but none is attempted until you release it. Held mail still bounces when it reaches the queue lifetime."
		}
		conn, err := act(r.Context(), c.actor(r), id)
		if err != nil {
			c.failed(w, r, back, err)
			return
		}
		c.flash(w, r, fmt.Sprintf(msg, conn.Name))
		seeOther(w, r, back)
	}
}

// rerouteConnector is POST /queue/connectors/{id}/reroute.
func (c *Console) rerouteConnector(w http.ResponseWriter, r *http.Request) {
	id, ok := pathInt(r, "id")
	if !ok || c.queue == nil {
		c.notFound(w, r)
		return
	}
	back := queueBack(r)
	n, err := c.queue.Reroute(r.Context(), c.actor(r), id)
	if err != nil {
		c.failed(w, r, back, err)
		return
	}
	switch n {
	case 0:
		c.flash(w, r, "No mail was waiting for this connector: nothing to re-route.")
	case 1:
		c.flash(w, r, "1 waiting recipient was re-routed under today's connectors and is being tried now.")
	default:
		c.flash(w, r, fmt.Sprintf("%d waiting recipients were re-routed under today's connectors and are being tried now.", n))
	}
	seeOther(w, r, back)
}

// retryMessage is POST /queue/messages/{uid}/retry.
func (c *Console) retryMessage(w http.ResponseWriter, r *http.Request) {
	if c.queue == nil {
		c.notFound(w, r)
		return
	}
	uid, back := chi.URLParam(r, "uid"), queueBack(r)
	if err := c.queue.Retry(r.Context(), c.actor(r), uid); err != nil {
		c.queueRefused(w, r, back, uid, err)
		return
	}
	c.flash(w, r, "Message "+uid+" is being tried now.")
	seeOther(w, r, back)
}

// confirmMessageAction is GET /queue/messages/{uid}/bounce and .../delete:
// what is about to happen, and the button.
func (c *Console) confirmMessageAction(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c.queue == nil {
			c.notFound(w, r)
			return
		}
		uid := chi.URLParam(r, "uid")
		t, err := queue.GetTracePage(r.Context(), c.store, uid, queue.EventPage{Limit: 1})
		if errors.Is(err, queue.ErrNoMessage) {
			c.notFound(w, r)
			return
		}
		if err != nil {
			c.serverError(w, r, err)
			return
		}
		if t.Status != queue.Queued && t.Status != queue.Deferred {
			c.flashWarning(w, r, fmt.Sprintf("Message %s is %s already: only waiting messages can be bounced or deleted.", uid, t.Status))
			seeOther(w, r, "/trace/"+url.PathEscape(uid))
			return
		}
		var waiting []string
		for _, rc := range t.Recipients {
			if rc.Status == queue.Queued || rc.Status == queue.Deferred {
				waiting = append(waiting, rc.Address)
			}
		}
		sender := t.Sender
		if sender == "" {
			sender = "<> (a bounce)"
		}
		cp := web.ConfirmPage{
			Details: []string{"From " + sender + ", received " + web.When(t.ReceivedAt) + ".",
				"Waiting for " + strings.Join(waiting, ", ") + "."},
			Action: "/queue/messages/" + uid + "/" + action, Cancel: "/queue",
		}
		if action == "bounce" {
			cp.Page = c.page(w, r, "Bounce message "+uid, "queue")
			cp.Heading, cp.Button = "Return message "+uid+" to its sender?", "Bounce it"
			cp.Message = "The waiting recipients are given up and a delivery status notification (DSN) goes back to the sender saying the administrator returned the message. It will not be delivered."
			if t.Sender == "" {
				cp.Warnings = []string{"This message is itself a bounce (null sender): no DSN is sent for it, as a bounce never bounces."}
			}
		} else {
			cp.Page = c.page(w, r, "Delete message "+uid, "queue")
			cp.Heading, cp.Button = "Delete message "+uid+"?", "Delete it"
			cp.Message = "The message, its content and its trace are removed for good. Nobody is told: no DSN goes to the sender. The audit log keeps who deleted it, its sender and its recipients."
		}
		c.render(w, r, http.StatusOK, web.Confirm(cp))
	}
}

// bounceMessage is POST /queue/messages/{uid}/bounce.
func (c *Console) bounceMessage(w http.ResponseWriter, r *http.Request) {
	if c.queue == nil {
		c.notFound(w, r)
		return
	}
	uid := chi.URLParam(r, "uid")
	if err := c.queue.Bounce(r.Context(), c.actor(r), uid); err != nil {
		c.queueRefused(w, r, "/queue", uid, err)
		return
	}
	c.flash(w, r, "Message "+uid+" was returned to its sender.")
	seeOther(w, r, "/trace/"+url.PathEscape(uid))
}

// deleteMessage is POST /queue/messages/{uid}/delete.
func (c *Console) deleteMessage(w http.ResponseWriter, r *http.Request) {
	if c.queue == nil {
		c.notFound(w, r)
		return
	}
	uid := chi.URLParam(r, "uid")
	if err := c.queue.Delete(r.Context(), c.actor(r), uid); err != nil {
		c.queueRefused(w, r, "/queue", uid, err)
		return
	}
	c.flash(w, r, "Message "+uid+" was deleted; no DSN was sent.")
	seeOther(w, r, "/queue")
}
