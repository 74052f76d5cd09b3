package connector

import "testing"

// Inputs found in review that must be refused.
func TestReviewRefusals(t *testing.T) {
	for _, s := range []string{"mx.contoso.com:+25", "mx.contoso.com:025", "mx.contoso.com:"} {
		if _, err := ParseSmartHost(s); err == nil {
			t.Errorf("ParseSmartHost(%q) accepted", s)
		}
	}
	for _, s := range []string{"john@ contoso.com", "<john@contoso.com", "john@contoso.com>"} {
		if _, err := ParseAddress(s); err == nil {
			t.Errorf("ParseAddress(%q) accepted", s)
		}
	}
	if _, err := ParseDomainPattern("*. contoso.com"); err == nil {
		t.Error(`ParseDomainPattern("*. contoso.com") accepted`)
	}
	s := OutboundSpec{Common: Common{Name: "on-prem", ConnectorType: OnPremises}, AllAcceptedDomains: true, UseMXRecord: true}
	if errs := s.Normalize(); errs["use_mx_record"] == "" {
		t.Errorf("all accepted domains by MX (a loop back to flowgate) accepted: %v", errs)
	}
}
