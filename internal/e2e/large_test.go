package e2e

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil"
)

// TestLargestMessageDeliveredIntact: a message of almost the default size
// limit (35 MiB), which the relay stores in pieces as it reads it and
// delivery reads back piece by piece, reaches the next hop byte for byte
// — lines of every length up to the 998 of RFC 5322, dot lines, a lone
// dot — and its pieces are gone from the queue once it is delivered.
func TestLargestMessageDeliveredIntact(t *testing.T) {
	for name, eng := range engines(t) {
		t.Run(name, func(t *testing.T) {
			env, opts := eng(t)
			tok := env.token(t)
			sink := testutil.NewSink(t, testutil.SinkOptions{})
			p := start(t, env)
			st := testutil.OpenStoreWith(t, opts)
			relayToSink(t, p, tok, st, sink.Addr)
			waitRoute(t, p, tok, "127.0.0.80", "sender@fabrikam.com", "john@contoso.com", sink.Addr)

			rng := rand.New(rand.NewPCG(35, 1))
			var b strings.Builder
			b.WriteString("Subject: the largest message\r\nMessage-ID: <large@e2e.test>\r\n\r\n")
			const limit = 36700160
			alphabet := "abcdefghijklmnopqrstuvwxyz0123456789 .-=:"
			for b.Len() < limit-2000 {
				switch rng.IntN(50) {
				case 0:
					b.WriteString(".\r\n")
				case 1:
					b.WriteString("..leading dots\r\n")
				default:
					n := rng.IntN(998)
					for range n {
						b.WriteByte(alphabet[rng.IntN(len(alphabet))])
					}
					b.WriteString("\r\n")
				}
			}
			body := b.String()

			c, err := dialSMTP("127.0.0.80", p.SMTP)
			if err != nil {
				t.Fatal(err)
			}
			code, text, err := c.mail("sender@fabrikam.com", "john@contoso.com", body)
			c.close()
			if err != nil || code != 250 {
				t.Fatalf("sending %d bytes: %d %s %v", len(body), code, text, err)
			}
			got := sink.Wait(t, 1, 60*time.Second)[0].Data
			if !strings.HasSuffix(got, body) || !strings.HasPrefix(got, "Received: ") || strings.Count(got, "Message-ID: <large@e2e.test>") != 1 {
				i := 0
				for i < len(got) && i < len(body) && got[len(got)-1-i] == body[len(body)-1-i] {
					i++
				}
				t.Fatalf("delivered %d bytes for %d sent; they agree only in the last %d bytes", len(got), len(body), i)
			}
			uid := text[strings.LastIndex(text, " ")+1:]
			var pieces int
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				st.DB().Raw("SELECT COUNT(*) FROM message_chunks WHERE uid = ?", uid).Scan(&pieces)
				if pieces == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d pieces of the delivered message %s are still in the queue", pieces, uid)
				}
			}
			t.Logf("%d bytes delivered intact", len(body))
		})
	}
}
