package relay_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

var admin = store.Actor{Kind: "user", Name: "admin@contoso.com"}

// harness is a real relay on 127.0.0.1 over a real store.
type harness struct {
	t     testing.TB
	st    *store.Store
	live  *liveconfig.Config
	q     *queue.Writer
	relay *relay.Relay
	addr  string
	ca    *testutil.CA // signs the relay's and the clients' certificates
}

func newHarness(t testing.TB, e testutil.Engine, mod func(*relay.Config)) *harness {
	t.Helper()
	h := &harness{t: t, st: testutil.OpenStore(t, e), ca: testutil.NewCA(t, "Test Root CA")}
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	var err error
	h.live, err = liveconfig.Load(ctx, h.st, log)
	if err != nil {
		t.Fatal(err)
	}
	go h.live.Run(ctx)
	h.q = queue.NewWriter(h.st, log)
	cfg := relay.Config{
		Hostname:    "gw.flowgate.test",
		Certificate: h.ca.Issue(t, "gw.flowgate.test", "gw.flowgate.test"),
		ClientRoots: h.ca.Pool(),
	}
	if mod != nil {
		mod(&cfg)
	}
	h.relay = relay.New(cfg, h.live, h.q, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	go h.relay.Serve(ln)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = h.relay.Shutdown(sctx)
		h.q.Close()
		cancel()
	})
	return h
}

// change runs a configuration change and waits until the relay's index
// reflects it.
func (h *harness) change(fn func()) { h.t.Helper(); testutil.AfterReload(h.t, h.live, fn) }

func (h *harness) acceptedDomain(domains ...string) {
	h.t.Helper()
	for _, d := range domains {
		h.change(func() {
			if _, err := h.st.CreateAcceptedDomain(context.Background(), admin, d, connector.Authoritative); err != nil {
				h.t.Fatal(err)
			}
		})
	}
}

// activeConnector creates a connector with revision 1 active.
func (h *harness) activeConnector(spec connector.Spec) int64 {
	h.t.Helper()
	var id int64
	h.change(func() { id = testutil.ActivateConnector(h.t, h.st, spec) })
	return id
}

// clientOpts describe how a test client connects.
type clientOpts struct {
	src  string           // source address, 127.0.0.x
	tls  bool             // run STARTTLS
	cert *tls.Certificate // client certificate to present
}

// dial opens a session: greeting, EHLO, and STARTTLS + EHLO when asked.
func (h *harness) dial(o clientOpts) *testutil.RawSMTP {
	h.t.Helper()
	if o.src == "" {
		o.src = "127.0.0.1"
	}
	c := testutil.NewRawSMTP(h.t, o.src, h.addr)
	if code, text := c.Cmd("EHLO client.test"); code != 250 {
		h.t.Fatalf("EHLO: %d %s", code, text)
	}
	if o.tls {
		cfg := &tls.Config{RootCAs: h.ca.Pool(), ServerName: "gw.flowgate.test"}
		if o.cert != nil {
			cfg.Certificates = []tls.Certificate{*o.cert}
		}
		c.StartTLS(cfg)
		if code, text := c.Cmd("EHLO client.test"); code != 250 {
			h.t.Fatalf("EHLO after STARTTLS: %d %s", code, text)
		}
	}
	return c
}

// result is the outcome of one message attempt.
type result struct {
	mailCode int
	mailText string
	rcpt     []int
	rcptText []string
	dataCode int
	dataText string
}

func (r result) accepted() bool { return r.dataCode == 250 }

// send runs MAIL, RCPTs and, when any RCPT was accepted, DATA.
func send(c *testutil.RawSMTP, from string, rcpts []string, body string) result {
	var r result
	r.mailCode, r.mailText = c.Cmd("MAIL FROM:<%s>", from)
	if r.mailCode != 250 {
		return r
	}
	ok := false
	for _, rc := range rcpts {
		code, text := c.Cmd("RCPT TO:<%s>", rc)
		r.rcpt = append(r.rcpt, code)
		r.rcptText = append(r.rcptText, text)
		ok = ok || code == 250
	}
	if !ok {
		c.Cmd("RSET")
		return r
	}
	if code, text := c.Cmd("DATA"); code != 354 {
		r.dataCode, r.dataText = code, text
		return r
	}
	if body == "" {
		body = "Subject: test\r\nMessage-ID: <" + fmt.Sprint(time.Now().UnixNano()) + "@client.test>\r\n\r\nhello\r\n"
	}
	c.Send("%s.\r\n", body)
	r.dataCode, r.dataText = c.Read()
	return r
}

// traceRow is a row of the messages table.
type traceRow struct {
	UID, Status, ClientIP, TLSVersion, TLSCipher, ClientCert, Sender, InboundConnector, Attribution, Reply, MessageIDHeader string
	Size                                                                                                                    int64
}

func (h *harness) traces() []traceRow {
	h.t.Helper()
	// Rejected traces are written without waiting; let them land.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.q.Sync(ctx); err != nil {
		h.t.Fatal(err)
	}
	var rows []traceRow
	err := h.st.DB().Raw(`SELECT uid, status, client_ip, tls_version, tls_cipher, client_cert, sender, inbound_connector,
		attribution, reply, message_id_header, size FROM messages ORDER BY id`).Scan(&rows).Error
	if err != nil {
		h.t.Fatal(err)
	}
	return rows
}

func (h *harness) lastTrace() traceRow {
	h.t.Helper()
	rows := h.traces()
	if len(rows) == 0 {
		h.t.Fatal("no trace rows")
	}
	return rows[len(rows)-1]
}

// event is the detail of the first trace event of type typ of message uid.
func (h *harness) event(uid, typ string) string {
	h.t.Helper()
	var detail string
	if err := h.st.DB().Raw(`SELECT e.detail FROM message_events e JOIN messages m ON m.id = e.message_id
		WHERE m.uid = ? AND e.type = ? ORDER BY e.id LIMIT 1`, uid, typ).Row().Scan(&detail); err != nil {
		h.t.Fatalf("%s event of %s: %v", typ, uid, err)
	}
	return detail
}

// body is a stored message's content: its body, or its pieces in order (a
// large message, queue.ChunkSize).
func (h *harness) body(uid string) string {
	h.t.Helper()
	if pieces := h.pieces(uid); len(pieces) > 0 {
		return strings.Join(pieces, "")
	}
	var data []byte
	if err := h.st.DB().Raw(`SELECT b.data FROM message_bodies b JOIN messages m ON m.id = b.message_id WHERE m.uid = ?`, uid).Row().Scan(&data); err != nil {
		h.t.Fatalf("body of %s: %v", uid, err)
	}
	return string(data)
}

// pieces are the stored pieces of a large message's content, in order.
func (h *harness) pieces(uid string) []string {
	h.t.Helper()
	var pieces [][]byte
	if err := h.st.DB().Raw(`SELECT data FROM message_chunks WHERE uid = ? ORDER BY seq`, uid).Scan(&pieces).Error; err != nil {
		h.t.Fatalf("pieces of %s: %v", uid, err)
	}
	out := make([]string, len(pieces))
	for i, p := range pieces {
		out[i] = string(p)
	}
	return out
}

func uidOf(t testing.TB, reply string) string {
	t.Helper()
	i := strings.Index(reply, "queued as ")
	if i < 0 {
		t.Fatalf("reply %q has no queue id", reply)
	}
	return strings.TrimSpace(reply[i+len("queued as "):])
}
