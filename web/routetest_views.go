package web

// RouteTestPage is the route test: the form, its errors, and the answer
// once the form is sent.
type RouteTestPage struct {
	Page
	Form   RouteTestForm
	Errors Errors // by field: "sender", "recipients", "client_ip", "cert_name", "headers", "size"
	Result *RouteTestResult
}

// RouteTestForm is the route test form as typed.
type RouteTestForm struct {
	Sender     string
	Recipients string // one address a line
	ClientIP   string
	TLS        bool
	CertName   string
	Headers    string // "Name: value" lines
	Size       string // bytes
}

// RouteTestResult is what the relay would do with the test message.
type RouteTestResult struct {
	// Summary is the first sentence: from where, as whom, and the inbound
	// connector it is attributed to and why (or why it is refused).
	Summary     string
	Accepted    bool   // the message would be accepted (some recipient delivered)
	Reply       string // the reply to the client: the refusal, or the 250
	RefusedAt   string // "sender", "recipient", "rules" or "" when accepted
	Inbound     string // the inbound connector's name, "" for none
	Attribution string // why that connector (or why the sender is refused)
	Routes      []RouteTestRoute
	Rules       []RouteTestRule
	RulesRan    bool // some recipient was accepted at RCPT TO, so the rules ran
	Partly      bool // refused for some recipients only: the others would be accepted
}

// RouteTestRoute is one recipient's answer.
type RouteTestRoute struct {
	Recipient string
	// Status is "accepted", "refused" (at RCPT TO), "rejected" (by a mail
	// flow rule) or "deferred".
	Status    string
	Reply     string   // the reply when not accepted, or the deferral
	Rule      string   // the rule that chose the route or rejected it; "" for none
	Via       string   // "Outbound connector “X”", "MX lookup (no connector)", "Deferred"
	Connector string   // the outbound connector's name, "" for none
	NextHops  []string // smart hosts, or the MX hosts to look up
	TLS       string   // the TLS setting in words
	Reason    string   // why this route won (or why refused)
}

// RouteTestRule is what one mail flow rule did for the message.
type RouteTestRule struct {
	Name         string
	Mode         string // "enforce" or "audit"
	Matched      bool
	Applied      bool
	Detail       string   // why, when every recipient shares it
	PerRecipient []string // why, per recipient, when theirs differ
}

// RouteStatusBadge is a recipient's status as a badge's class and text.
func RouteStatusBadge(status string) (class, text string) {
	switch status {
	case "accepted":
		return "active", "✓ accepted"
	case "refused":
		return "failed", "✗ refused"
	case "rejected":
		return "failed", "✗ rejected by a rule"
	case "deferred":
		return "draft", "⏸ deferred"
	}
	return "disabled", status
}

// RuleVerdict is a rule's line in the rules list: "applied", "matched
// (audit only)", "matched, not applied", "not matched".
func RuleVerdict(r RouteTestRule) (class, text string) {
	switch {
	case r.Applied:
		return "active", "✓ matched, applied"
	case r.Matched && r.Mode == "audit":
		return "validated", "✓ matched (audit: recorded only)"
	case r.Matched:
		return "validated", "✓ matched, not applied"
	}
	return "disabled", "– not matched"
}
