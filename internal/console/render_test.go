package console

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/a-h/templ"
)

// A template that fails halfway answers a plain 500, none of what it wrote
// before failing, and one log record.
func TestRenderFailureIsAPlainServerError(t *testing.T) {
	var logs bytes.Buffer
	c := &Console{log: slog.New(slog.NewTextHandler(&logs, nil))}
	halfPage := templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		if _, err := io.WriteString(w, "<h1>Connectors</h1><table>"); err != nil {
			return err
		}
		return errors.New("template broke")
	})

	rec := httptest.NewRecorder()
	c.render(rec, httptest.NewRequest(http.MethodGet, "/connectors", nil), http.StatusOK, halfPage)

	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	if body := rec.Body.String(); strings.Contains(body, "Connectors") || strings.Contains(body, "<table>") {
		t.Fatalf("the 500 carries the half-rendered page: %q", body)
	}
	if body := rec.Body.String(); !strings.Contains(body, serverErrorMessage) {
		t.Fatalf("the 500 says %q, want %q", body, serverErrorMessage)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want plain text", ct)
	}
	if n := strings.Count(logs.String(), "template broke"); n != 1 {
		t.Fatalf("the failure is logged %d times, want once:\n%s", n, logs.String())
	}
}

// A page that renders is sent whole, with the status asked for.
func TestRenderSendsThePageWithItsStatus(t *testing.T) {
	var logs bytes.Buffer
	c := &Console{log: slog.New(slog.NewTextHandler(&logs, nil))}
	page := templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		_, err := io.WriteString(w, "<h1>Not found</h1>")
		return err
	})

	rec := httptest.NewRecorder()
	c.render(rec, httptest.NewRequest(http.MethodGet, "/nowhere", nil), http.StatusNotFound, page)

	if rec.Code != http.StatusNotFound || rec.Body.String() != "<h1>Not found</h1>" {
		t.Fatalf("got %d %q, want 404 and the page", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if logs.Len() != 0 {
		t.Fatalf("a page that renders is logged:\n%s", logs.String())
	}
}
