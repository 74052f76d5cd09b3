package relay_test

import (
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/testutil"
)

// The validation probe's mechanism is refused like any unknown one when no
// validation run is active, even from this host over TLS.
func TestProbeMechanismOutsideARun(t *testing.T) {
	h := newHarness(t, testutil.Engines[0], nil)
	h.acceptedDomain("contoso.com")
	c := h.dial(clientOpts{src: "127.0.0.1", tls: true})
	if code, text := c.Cmd("AUTH %s", relay.ProbeMechanism); code != 504 || !strings.HasPrefix(text, "504 5.5.4") {
		t.Errorf("AUTH %s outside a run: %d %s, want 504 5.5.4", relay.ProbeMechanism, code, text)
	}
	if code, text := c.Cmd("AUTH %s c2VjcmV0", relay.ProbeMechanism); code != 504 {
		t.Errorf("AUTH %s with a response outside a run: %d %s, want 504", relay.ProbeMechanism, code, text)
	}
	// During a run it is offered to this host.
	_, unregister := h.relay.RegisterProbe(&relay.Probe{Label: "test"})
	defer unregister()
	c = h.dial(clientOpts{src: "127.0.0.1", tls: true})
	if code, text := c.Cmd("AUTH %s", relay.ProbeMechanism); code != 334 {
		t.Errorf("AUTH %s during a run: %d %s, want 334", relay.ProbeMechanism, code, text)
	}
}
