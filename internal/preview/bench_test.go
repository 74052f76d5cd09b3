package preview_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/preview"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// bulkOptions shape the messages seedBulk writes.
type bulkOptions struct {
	// domain is the first recipient's domain; "" alternates fabrikam.test
	// and tailspin.test.
	domain string
	// second adds a contoso.com recipient to every message.
	second bool
	// header is every message's kept header section; "" writes a
	// realistic section of about 900 bytes, one in ten classified
	// confidential.
	header string
}

// realisticHeader is a header section like a relayed message's.
func realisticHeader(i int, at time.Time) string {
	class := "internal"
	if i%10 == 0 {
		class = "confidential"
	}
	return fmt.Sprintf("Received: from mail%d.tailspin.test (mail%d.tailspin.test [198.51.100.%d])\r\n"+
		"\tby gw.contoso.com (flowgate) with ESMTPS id m%08d\r\n\tfor <u%d@fabrikam.test>; %s\r\n"+
		"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=tailspin.test; s=sel1;\r\n"+
		"\th=from:to:subject:date:message-id; bh=%s;\r\n\tb=%s\r\n"+
		"From: Sender %d <s%d@tailspin.test>\r\nTo: <u%d@fabrikam.test>\r\nSubject: Quarterly report %d\r\n"+
		"Date: %s\r\nMessage-ID: <%d.%d@tailspin.test>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/alternative; boundary=\"b%d\"\r\nX-Classification: %s\r\n",
		i%50, i%50, i%250, i, i, at.Format(time.RFC1123Z),
		strings.Repeat("A", 44), strings.Repeat("B", 340),
		i, i, i, i, at.Format(time.RFC1123Z), i, at.Unix(), i, class)
}

// seedBulk writes n traced messages received from start on, one a second
// (wrapping within the hour), with their recipients and header sections,
// straight into the tables with multi-row INSERTs: fast enough to seed
// 100,000 messages for a benchmark. It leaves the id sequences past the
// rows it wrote.
func seedBulk(tb testing.TB, st *store.Store, start time.Time, n int, o bulkOptions) {
	tb.Helper()
	db := testutil.RawDB(tb, st)
	var first int64
	if err := db.QueryRow("SELECT COALESCE(MAX(id), 0) + 1 FROM messages").Scan(&first); err != nil {
		tb.Fatal(err)
	}
	const chunk = 500
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		var msgs, rcpts, hdrs strings.Builder
		msgs.WriteString("INSERT INTO messages (id, uid, received_at, status, client_ip, sender, size, inbound_connector, updated_at) VALUES ")
		rcpts.WriteString("INSERT INTO message_recipients (message_id, address, status, updated_at) VALUES ")
		hdrs.WriteString("INSERT INTO message_headers (message_id, section) VALUES ")
		for i := lo; i < hi; i++ {
			id := first + int64(i)
			at := start.Add(time.Duration(i%3600) * time.Second).Add(time.Duration(i/3600) * time.Millisecond)
			us := queue.Micros(at)
			domain := o.domain
			if domain == "" {
				domain = "fabrikam.test"
				if i%2 == 1 {
					domain = "tailspin.test"
				}
			}
			header := o.header
			if header == "" {
				header = realisticHeader(i, at)
			}
			sep := ","
			if i == lo {
				sep = ""
			}
			fmt.Fprintf(&msgs, "%s(%d, 'bulk%d', %d, 'queued', '198.51.100.%d', 's%d@tailspin.test', %d, '', %d)",
				sep, id, id, us, i%250, i, len(header)+4000, us)
			fmt.Fprintf(&rcpts, "%s(%d, 'u%d@%s', 'queued', %d)", sep, id, i, domain, us)
			if o.second {
				fmt.Fprintf(&rcpts, ",(%d, 'v%d@contoso.com', 'queued', %d)", id, i, us)
			}
			fmt.Fprintf(&hdrs, "%s(%d, %s)", sep, id, q(kept(header)))
		}
		tx, err := db.Begin()
		if err != nil {
			tb.Fatal(err)
		}
		for _, stmt := range []string{msgs.String(), rcpts.String(), hdrs.String()} {
			if _, err := tx.Exec(stmt); err != nil {
				_ = tx.Rollback()
				tb.Fatalf("seed: %v", err)
			}
		}
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
	if st.Dialect() == store.Postgres {
		if _, err := db.Exec("SELECT setval(pg_get_serial_sequence('messages', 'id'), (SELECT MAX(id) FROM messages))"); err != nil {
			tb.Fatal(err)
		}
		if _, err := db.Exec("ANALYZE"); err != nil {
			tb.Fatal(err)
		}
	}
}

// benchMessages is the number of traced messages the benchmark replays
// (FLOWGATE_PREVIEW_BENCH_MESSAGES overrides it).
func benchMessages(tb testing.TB) int {
	if v := os.Getenv("FLOWGATE_PREVIEW_BENCH_MESSAGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			tb.Fatalf("FLOWGATE_PREVIEW_BENCH_MESSAGES %q", v)
		}
		return n
	}
	return 100000
}

// BenchmarkRun previews drafts over 100,000 traced messages received in
// the last day (two recipients each, u<i>@fabrikam.test for even i or
// u<i>@tailspin.test, and v<i>@contoso.com; ~900-byte header sections,
// one in ten confidential), on each engine:
//
//   - domain_and_header: "Confidential to the gateway" (recipient_domain_is
//     fabrikam.test and header_contains X-Classification: confidential):
//     the header sections of half the messages are read;
//   - header_only: header_contains X-Classification: confidential alone:
//     every header section is read;
//   - domain_only: recipient_domain_is fabrikam.test alone: none is.
//
// Run it with
//
//	go test -run '^$' -bench BenchmarkRun -benchtime 5x ./internal/preview/
func BenchmarkRun(b *testing.B) {
	for _, e := range testutil.Engines {
		b.Run(e.Name, func(b *testing.B) {
			st := testutil.OpenStore(b, e)
			f := setup(b, st)
			n := benchMessages(b)
			t0 := time.Now()
			seedBulk(b, st, now.Add(-23*time.Hour), n, bulkOptions{second: true})
			b.Logf("%s: seeded %d messages in %s", e.Name, n, time.Since(t0).Round(time.Millisecond))
			confidential := (n + 9) / 10 // i%10 == 0: even, so to fabrikam.test
			for _, v := range []struct {
				name             string
				draft            func() *rules.Rule
				matched, changed int
			}{
				{"domain_and_header", func() *rules.Rule { return draft(f) }, confidential, confidential},
				{"header_only", func() *rules.Rule {
					d := draft(f)
					d.Conditions.RecipientDomainIs = nil
					return d
				}, confidential, 2 * confidential},
				{"domain_only", func() *rules.Rule {
					d := draft(f)
					d.Conditions.HeaderContains = nil
					return d
				}, (n + 1) / 2, (n + 1) / 2},
			} {
				b.Run(v.name, func(b *testing.B) {
					ctx := context.Background()
					var res *preview.Result
					for b.Loop() {
						var err error
						res, err = preview.Run(ctx, st, preview.Request{Rule: v.draft(), Now: now})
						if err != nil {
							b.Fatal(err)
						}
					}
					if res.Considered != n || res.Matched != v.matched || res.ChangedTotal != v.changed || res.Undecidable != 0 {
						b.Fatalf("considered %d, matched %d, changed %d, undecidable %d", res.Considered, res.Matched, res.ChangedTotal, res.Undecidable)
					}
					b.ReportMetric(float64(n), "messages/op")
				})
			}
		})
	}
}
