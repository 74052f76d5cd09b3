package relay

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"sync"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/flowgate/flowgate/internal/routing"
)

// ProbeMechanism is the SASL mechanism a validation probe authenticates
// with. It is offered only to connections from this host's own loopback
// address (127.0.0.1 or ::1), only over TLS (go-smtp allows AUTH only
// then), and only while a validation run has a probe registered; its
// secret is random, held only in this process's memory, and forgotten when
// the run ends.
const ProbeMechanism = "X-FLOWGATE-PROBE"

// Probe is what a validation probe's session becomes once authenticated:
// the client facts of the connector under test (its source IP, TLS and
// certificate names, supplied by the validator) and an index in which the
// revision under test stands in for the connector's active one.
type Probe struct {
	Client routing.Client
	Index  *routing.Index
	Label  string // for the trace: "validation of inbound connector X revision N"
	// Observe, when set, receives the session's decisions, so the
	// validator sees the attribution and routes it got.
	Observe func(ProbeEvent)
}

// ProbeEvent is one decision in a probe session.
type ProbeEvent struct {
	Sender    *SenderDecision    // at MAIL FROM
	Recipient *RecipientDecision // at RCPT TO
	Queued    string             // the message id, once the message is queued
}

type probeRegistry struct {
	mu sync.Mutex
	m  map[[32]byte]*Probe
}

// RegisterProbe makes p usable by a session that authenticates with the
// returned secret, until unregister is called.
func (r *Relay) RegisterProbe(p *Probe) (secret string, unregister func()) {
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	secret = hex.EncodeToString(raw[:])
	key := sha256.Sum256([]byte(secret))
	r.probes.mu.Lock()
	if r.probes.m == nil {
		r.probes.m = map[[32]byte]*Probe{}
	}
	r.probes.m[key] = p
	r.probes.mu.Unlock()
	return secret, func() {
		r.probes.mu.Lock()
		delete(r.probes.m, key)
		r.probes.mu.Unlock()
	}
}

func (r *Relay) probeFor(secret string) *Probe {
	key := sha256.Sum256([]byte(secret))
	r.probes.mu.Lock()
	defer r.probes.mu.Unlock()
	return r.probes.m[key]
}

func (r *Relay) probing() bool {
	r.probes.mu.Lock()
	defer r.probes.mu.Unlock()
	return len(r.probes.m) > 0
}

// ownLoopback reports whether a client is this host itself: exactly
// 127.0.0.1 or ::1 (other 127/8 addresses are not trusted for probes).
func ownLoopback(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip == netip.AddrFrom4([4]byte{127, 0, 0, 1}) || ip == netip.IPv6Loopback()
}

var (
	replyAuthUnsupported = Reply{Code: 504, Enhanced: [3]int{5, 5, 4}, Text: "Unrecognized authentication mechanism"}
	replyAuthFailed      = Reply{Code: 535, Enhanced: [3]int{5, 7, 8}, Text: "Authentication credentials invalid"}
)

// AuthMechanisms implements smtp.AuthSession: nothing for anyone but a
// validation probe from this host during a run.
func (s *session) AuthMechanisms() []string {
	if !ownLoopback(s.ip) || !s.r.probing() {
		return nil
	}
	return []string{ProbeMechanism}
}

// Auth implements smtp.AuthSession. Outside a validation run the probe
// mechanism is refused like any unknown one.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if s.errs.tripped {
		return nil, replyTooManyErrors.Err()
	}
	if mech != ProbeMechanism || !ownLoopback(s.ip) || !s.r.probing() {
		return nil, s.countRefusal(replyAuthUnsupported).Err()
	}
	return probeServer(func(resp []byte) ([]byte, bool, error) {
		if resp == nil {
			return []byte{}, false, nil
		}
		p := s.r.probeFor(string(resp))
		if p == nil || !ownLoopback(s.ip) {
			s.log.Warn("validation probe authentication refused")
			return nil, false, s.countRefusal(replyAuthFailed).Err()
		}
		s.probe = p
		s.client = p.Client
		s.log = s.log.With("probe", p.Label)
		return nil, true, nil
	}), nil
}

type probeServer func(resp []byte) ([]byte, bool, error)

func (f probeServer) Next(resp []byte) ([]byte, bool, error) { return f(resp) }

var _ smtp.AuthSession = (*session)(nil)
