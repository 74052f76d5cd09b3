package rules_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/rules"
)

// Random rule sets over a small vocabulary, so that rules often match and
// overlap: Evaluate (indexed) and Explain (every rule, in order) must
// always decide the same.
func TestEvaluateAgreesWithExplain(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 1000 {
		n := 1 + rng.IntN(25)
		rs := make([]rules.Rule, n)
		for i := range rs {
			rs[i] = randomRule(rng, i)
		}
		s := rules.Compile(rs)
		for range 10 {
			m, rcpts := randomMessage(rng)
			fast := s.Evaluate(now, &m, rcpts)
			slow := s.Explain(now, &m, rcpts)
			for i := range rcpts {
				if !sameDecision(fast[i], slow[i]) {
					t.Fatalf("iteration %d, message %+v:\nEvaluate: %s\nExplain:  %s", iter, m, describe(fast[i]), describe(slow[i]))
				}
			}
		}
	}
}

var (
	vocabDomains   = []string{"contoso.com", "sales.contoso.com", "fabrikam.com", "tailspin.example"}
	vocabLocals    = []string{"a", "b"}
	vocabInbound   = []string{"Partner A", "Server"}
	vocabHeaders   = []string{"Subject", "X-A"}
	vocabWords     = []string{"urgent", "report", "é"}
	vocabPatterns  = []string{"^R", "t$", "(?i)urgent"}
	vocabIPRanges  = []string{"192.0.2.0/25", "192.0.2.128-192.0.2.200", "2001:db8::/64", "192.0.0.0/16", "192.0.2.0/24", "192.0.2.150"}
	vocabClientIPs = []string{"192.0.2.1", "192.0.2.150", "2001:db8::7", "198.51.100.1"}
	vocabSubjects  = []string{"Report", "urgent: Report", "=?UTF-8?Q?=C3=A9t=C3=A9?=", "hi"}
)

func pick[T any](rng *rand.Rand, list []T) T { return list[rng.IntN(len(list))] }

func some[T any](rng *rand.Rand, list []T) []T {
	out := []T{pick(rng, list)}
	if rng.IntN(3) == 0 {
		out = append(out, pick(rng, list))
	}
	return out
}

func randomPredicates(rng *rand.Rand, keys int) rules.Predicates {
	var p rules.Predicates
	addr := func() string { return pick(rng, vocabLocals) + "@" + pick(rng, vocabDomains) }
	for range keys {
		switch rng.IntN(11) {
		case 0:
			p.SenderAddressIs = append(p.SenderAddressIs, addr())
		case 1:
			p.SenderDomainIs = some(rng, vocabDomains)
		case 2:
			p.RecipientAddressIs = append(p.RecipientAddressIs, addr())
		case 3:
			p.RecipientDomainIs = some(rng, vocabDomains)
		case 4:
			p.FromScope = pick(rng, []rules.Scope{rules.InOrganization, rules.NotInOrganization})
		case 5:
			p.SentToScope = pick(rng, []rules.Scope{rules.InOrganization, rules.NotInOrganization})
		case 6:
			p.SenderIPRanges = some(rng, vocabIPRanges)
		case 7:
			p.HeaderContains = append(p.HeaderContains, rules.HeaderWords{Header: pick(rng, vocabHeaders), Words: some(rng, vocabWords)})
		case 8:
			p.HeaderMatches = append(p.HeaderMatches, rules.HeaderPattern{Header: pick(rng, vocabHeaders), Pattern: pick(rng, vocabPatterns)})
		case 9:
			p.MessageSizeOver = ptr(int64(rng.IntN(3) * 1000))
		case 10:
			p.InboundConnectorIs = some(rng, vocabInbound)
		}
	}
	return p
}

func randomRule(rng *rand.Rand, i int) rules.Rule {
	r := rules.Rule{Name: fmt.Sprint("r", i), Priority: ptr(rng.IntN(30)), Enabled: rng.IntN(8) != 0,
		Conditions: randomPredicates(rng, 1+rng.IntN(3))}
	if rng.IntN(3) == 0 {
		r.Exceptions = randomPredicates(rng, 1+rng.IntN(2))
	}
	if rng.IntN(3) == 0 {
		r.Actions.Reject = &rules.Reject{}
	} else {
		r.Actions.RouteToOutboundConnector = ptr(int64(1 + rng.IntN(5)))
	}
	r.Actions.StopProcessing = rng.IntN(4) == 0
	if rng.IntN(4) == 0 {
		r.Mode = rules.Audit
	}
	switch rng.IntN(8) {
	case 0:
		r.ActivationDate = ptr(now.Add(time.Hour))
	case 1:
		r.ExpiryDate = ptr(now.Add(-time.Hour))
	case 2:
		r.ActivationDate, r.ExpiryDate = ptr(now.Add(-time.Hour)), ptr(now.Add(time.Hour))
	}
	if rng.IntN(20) == 0 {
		r.Conditions.SenderDomainIs = []string{"not a domain"} // invalid: never applies
	}
	return r
}

func randomMessage(rng *rand.Rand) (rules.Message, []rules.Recipient) {
	m := rules.Message{
		ClientIP:         netip.MustParseAddr(pick(rng, vocabClientIPs)),
		InboundConnector: pick(rng, append([]string{""}, vocabInbound...)),
		FromOrganization: rng.IntN(2) == 0,
		Size:             int64(rng.IntN(3000)),
	}
	if rng.IntN(5) != 0 {
		m.Sender = pick(rng, vocabLocals) + "@" + pick(rng, append(vocabDomains, "mail.sales.contoso.com", "CONTOSO.com"))
	}
	if rng.IntN(4) != 0 {
		m.Header = []byte(fmt.Sprintf("Subject: %s\r\nX-A: %s\r\n\r\n", pick(rng, vocabSubjects), pick(rng, vocabSubjects)))
	}
	rcpts := make([]rules.Recipient, 1+rng.IntN(3))
	for i := range rcpts {
		d := pick(rng, append(vocabDomains, "x.fabrikam.com"))
		rcpts[i] = rules.Recipient{Address: pick(rng, vocabLocals) + "@" + d, InOrganization: rng.IntN(2) == 0}
	}
	return m, rcpts
}
