package smtpreply

import (
	"errors"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestReply(t *testing.T) {
	for _, tc := range []struct {
		name      string
		r         Reply
		text      string
		status    string
		permanent bool
	}{
		{"enhanced 5xx", Reply{550, [3]int{5, 1, 1}, "no such user"}, "550 5.1.1 no such user", "5.1.1", true},
		{"enhanced 4xx", Reply{451, [3]int{4, 4, 0}, "no route"}, "451 4.4.0 no route", "4.4.0", false},
		{"4xx without enhanced code", Reply{Code: 421, Text: "busy"}, "421 busy", "4.0.0", false},
		{"5xx without enhanced code", Reply{Code: 554, Text: "no"}, "554 no", "5.0.0", true},
		{"success", Reply{Code: 250, Text: "2.0.0 Ok: queued"}, "250 2.0.0 Ok: queued", "5.0.0", false},
		{"no reply from a server", Reply{Text: "connection refused on 127.0.0.1:25"}, "connection refused on 127.0.0.1:25", "5.0.0", false},
	} {
		if got := tc.r.String(); got != tc.text {
			t.Errorf("%s: String() = %q, want %q", tc.name, got, tc.text)
		}
		if got := tc.r.Status(); got != tc.status {
			t.Errorf("%s: Status() = %q, want %q", tc.name, got, tc.status)
		}
		if got := tc.r.Permanent(); got != tc.permanent {
			t.Errorf("%s: Permanent() = %v, want %v", tc.name, got, tc.permanent)
		}
	}
}

func TestFromError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want Reply
	}{
		{"server reply", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "denied"}, Reply{550, [3]int{5, 7, 1}, "denied"}},
		{"no enhanced code", &smtp.SMTPError{Code: 452, EnhancedCode: smtp.NoEnhancedCode, Message: "full"}, Reply{Code: 452, Text: "full"}},
		{"wrapped", errors.Join(errors.New("data"), &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "bad"}), Reply{554, [3]int{5, 6, 0}, "bad"}},
		{"not a reply", errors.New("connection reset"), Reply{Text: "connection reset"}},
	} {
		if got := FromError(tc.err); got != tc.want {
			t.Errorf("%s: FromError = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
