// Package console is flowgate's admin console (SPEC section 4): the
// handlers behind the server-rendered pages of package web. Every page sits
// behind sign-in; every state-changing request is a POST, refused for the
// viewer role and checked against cross-site forgery with Go's
// http.CrossOriginProtection; the console changes configuration only
// through the same store methods as the JSON API.
package console

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/go-chi/chi/v5"

	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/validation"
	"github.com/flowgate/flowgate/static"
	"github.com/flowgate/flowgate/web"
)

// SessionTTL is how long a sign-in lasts.
const SessionTTL = 12 * time.Hour

// Console serves the admin console.
type Console struct {
	store      *store.Store
	log        *slog.Logger
	sessions   *dbSessions
	csrf       *http.CrossOriginProtection
	validation *validation.Service // nil: no Validate pages
	throttle   *signInThrottle
	security   Security
	queue      *queue.Control // nil: the queue page has no controls
}

// New returns the console over st.
func New(st *store.Store, log *slog.Logger) *Console {
	c := &Console{store: st, log: log, sessions: newDBSessions(st, SessionTTL), throttle: newSignInThrottle()}
	c.sessions.secure = func(r *http.Request) bool { return c.security.secure(r) }
	c.csrf = http.NewCrossOriginProtection()
	c.csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.errorPage(w, r, http.StatusForbidden, "This form was sent from another site, so flowgate refused it (cross-site request forgery protection). Open the console directly and try again.")
	}))
	return c
}

// WithSecurity sets what the console knows about the network in front of
// it: trusted proxies, HTTPS, the setup code.
func (c *Console) WithSecurity(s Security) *Console {
	c.security = s
	return c
}

// Register adds the console's routes to r: static files, sign-in, and the
// pages behind it.
func (c *Console) Register(r chi.Router) {
	sub, _ := fs.Sub(static.FS, ".")
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	r.Get("/static/*", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
	// An unknown address gets the console's error page, in its layout
	// (with the user's name when signed in), not bare text.
	r.NotFound(c.recoverer(securityHeaders(c.loadSession(http.HandlerFunc(c.notFound)))).ServeHTTP)
	r.Group(func(r chi.Router) {
		r.Use(c.recoverer, securityHeaders, c.csrf.Handler, c.loadSession)
		r.Get("/setup", c.setupForm)
		r.Post("/setup", c.setup)
		r.Get("/signin", c.signInForm)
		r.Post("/signin", c.signIn)
		r.Post("/signout", c.signOut)

		r.Group(func(r chi.Router) {
			r.Use(c.requireUser)
			r.Get("/", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/connectors", http.StatusSeeOther) })
			r.Get("/connectors", c.listConnectors)
			r.Get("/connectors/{dir}/{id}", c.showConnector)
			r.Get("/connectors/{dir}/{id}/validations/{vid}", c.showValidation)
			r.Get("/connectors/{dir}/{id}/validations/running/{run}", c.runningValidation)
			r.Get("/domains", c.listDomains)
			r.Get("/audit", c.auditLog)
			r.Get("/users", c.listUsers)
			r.Get("/rules", c.listRules)          // mail flow rules (rules.go)
			r.Get("/trace", c.traceSearch)        // message trace (trace.go)
			r.Get("/trace/{uid}", c.traceMessage) // one message's timeline (trace.go)
			r.Get("/route-test", c.routeTest)     // route test, a read-only query (routetest.go)
			r.Get("/queue", c.queuePage)          // the queue and its controls (queue.go)

			r.Group(func(r chi.Router) {
				r.Use(c.requireAdmin)
				r.Get("/connectors/new", c.newWizard)
				r.Get("/connectors/{dir}/{id}/edit", c.editWizard)
				r.Get("/wizard/{wid}/{step}", c.wizardGet)
				r.Post("/wizard/{wid}/{step}", c.wizardPost)
				r.Get("/connectors/{dir}/{id}/validate", c.validatePage)
				r.Post("/connectors/{dir}/{id}/validate", c.runValidation)
				r.Post("/connectors/{dir}/{id}/activate", c.activate)
				r.Post("/connectors/{dir}/{id}/enable", c.enableConnector(true))
				r.Post("/connectors/{dir}/{id}/disable", c.enableConnector(false))
				r.Get("/connectors/{dir}/{id}/delete", c.confirmDeleteConnector)
				r.Post("/connectors/{dir}/{id}/delete", c.deleteConnector)
				r.Post("/domains", c.createDomain)
				r.Get("/domains/{id}/delete", c.confirmDeleteDomain)
				r.Post("/domains/{id}/delete", c.deleteDomain)
				r.Post("/users", c.createUser)
				r.Post("/users/{id}/delete", c.deleteUser)
				r.Post("/tokens", c.createToken)
				r.Post("/tokens/{id}/revoke", c.revokeToken)
				// Mail flow rules (rules.go).
				r.Post("/queue/connectors/{id}/hold", c.holdConnector(true))
				r.Post("/queue/connectors/{id}/release", c.holdConnector(false))
				r.Post("/queue/connectors/{id}/reroute", c.rerouteConnector)
				r.Post("/queue/messages/{uid}/retry", c.retryMessage)
				r.Get("/queue/messages/{uid}/bounce", c.confirmMessageAction("bounce"))
				r.Post("/queue/messages/{uid}/bounce", c.bounceMessage)
				r.Get("/queue/messages/{uid}/delete", c.confirmMessageAction("delete"))
				r.Post("/queue/messages/{uid}/delete", c.deleteMessage)
				r.Get("/rules/new", c.newRule)
				r.Post("/rules/new", c.createRule)
				r.Get("/rules/{id}/edit", c.editRule)
				r.Post("/rules/{id}/edit", c.updateRule)
				r.Post("/rules/{id}/move", c.moveRuleStep)
				r.Post("/rules/{id}/enable", c.enableRule(true))
				r.Post("/rules/{id}/disable", c.enableRule(false))
				r.Get("/rules/{id}/delete", c.confirmDeleteRule)
				r.Post("/rules/{id}/delete", c.deleteRule)
			})
		})
	})
}

// securityHeaders forbids framing, inline scripts and foreign resources,
// and keeps pages out of shared caches.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func (c *Console) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				c.log.Error("console panic", "method", r.Method, "path", r.URL.Path, "panic", v)
				c.errorPage(w, r, http.StatusInternalServerError, serverErrorMessage)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type sessionKey struct{}

// loadSession attaches the request's session (signed in or not).
func (c *Console) loadSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := c.sessions.load(r)
		if err != nil {
			c.serverError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	})
}

func sessionFrom(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	if s == nil {
		return &session{}
	}
	return s
}

// requireUser sends visitors who are not signed in to the sign-in page
// (or, before the first admin exists, to the setup page).
func (c *Console) requireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sessionFrom(r).user != nil {
			next.ServeHTTP(w, r)
			return
		}
		n, err := c.store.CountUsers(r.Context())
		if err != nil {
			c.serverError(w, r, err)
			return
		}
		if n == 0 {
			http.Redirect(w, r, "/setup", http.StatusSeeOther)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			c.errorPage(w, r, http.StatusUnauthorized, "Your session has ended. Sign in again.")
			return
		}
		target := "/signin"
		if r.URL.Path != "/" {
			target += "?next=" + url.QueryEscape(r.URL.RequestURI())
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
	})
}

// requireAdmin refuses change pages and POSTs to viewers.
func (c *Console) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := sessionFrom(r).user; u == nil || u.Role != store.RoleAdmin {
			c.errorPage(w, r, http.StatusForbidden, "Your account has the viewer role: it can read everything but change nothing. Ask an admin.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// page fills the layout's fields for the signed-in user and takes the
// flash message, if any.
func (c *Console) page(w http.ResponseWriter, r *http.Request, title, section string) web.Page {
	p := web.Page{Title: title, Section: section}
	s := sessionFrom(r)
	if s.user != nil {
		p.User = &web.User{ID: s.user.ID, Email: s.user.Email, Role: string(s.user.Role)}
	}
	if s.data.Flash != "" {
		p.Flash, p.FlashWarns = s.data.Flash, s.data.FlashWarns
		s.data.Flash, s.data.FlashWarns = "", false
		if err := c.sessions.save(r, w, s); err != nil {
			c.log.Warn("console: clear flash", "err", err)
		}
	}
	return p
}

// flash sets a message for the next page the user sees.
func (c *Console) flash(w http.ResponseWriter, r *http.Request, msg string) {
	c.setFlash(w, r, msg, false)
}

// flashWarning sets a message about a failure for the next page the user
// sees, shown as a warning rather than a confirmation.
func (c *Console) flashWarning(w http.ResponseWriter, r *http.Request, msg string) {
	c.setFlash(w, r, msg, true)
}

func (c *Console) setFlash(w http.ResponseWriter, r *http.Request, msg string, warns bool) {
	s := sessionFrom(r)
	s.data.Flash, s.data.FlashWarns = msg, warns
	if err := c.sessions.save(r, w, s); err != nil {
		c.log.Warn("console: set flash", "err", err)
	}
}

// refuse answers a post whose form has errors: it keeps what was typed
// and the errors for the form's page, and sends the browser there. A post
// is never answered with a page of its own, so Back and reload never offer
// to send a form again.
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, page string, f *refusedForm) {
	s := sessionFrom(r)
	if s.data.Forms == nil {
		s.data.Forms = map[string]*refusedForm{}
	}
	key, _, _ := strings.Cut(page, "?") // the page's path: its query is the same form's
	s.data.Forms[key] = f
	if err := c.sessions.save(r, w, s); err != nil {
		c.serverError(w, r, err)
		return
	}
	seeOther(w, r, page)
}

// refused returns, once, what the last refused post of the form on page
// left for it (nil: nothing); the next view of the page is a fresh form.
func (c *Console) refused(w http.ResponseWriter, r *http.Request, page string) *refusedForm {
	s := sessionFrom(r)
	f := s.data.Forms[page]
	if f == nil {
		return nil
	}
	delete(s.data.Forms, page)
	if err := c.sessions.save(r, w, s); err != nil {
		c.log.Warn("console: clear a refused form", "err", err)
	}
	return f
}

// failed answers a post whose action the store refused without field
// errors (a conflict, such as removing the last admin) with a warning on
// the page at back; other errors as storeError does.
func (c *Console) failed(w http.ResponseWriter, r *http.Request, back string, err error) {
	var conflict *store.ConflictError
	if errors.As(err, &conflict) {
		c.flashWarning(w, r, conflict.Message)
		seeOther(w, r, back)
		return
	}
	c.storeError(w, r, err)
}

// render answers with the page comp and status. The page is rendered into
// a buffer before anything is written, so a template that fails answers a
// plain 500 instead of half a page with the status of a whole one.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, comp templ.Component) {
	var buf bytes.Buffer
	if err := comp.Render(r.Context(), &buf); err != nil {
		c.log.Error("console: render", "method", r.Method, "path", r.URL.Path, "err", err)
		http.Error(w, serverErrorMessage, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	// A failed write means the client has gone; there is no one to tell.
	_, _ = buf.WriteTo(w)
}

func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	title := http.StatusText(status)
	p := web.Page{Title: title}
	if u := sessionFrom(r).user; u != nil {
		p.User = &web.User{ID: u.ID, Email: u.Email, Role: string(u.Role)}
	}
	c.render(w, r, status, web.Error(web.ErrorPage{Page: p, Status: status, Message: msg}))
}

// serverErrorMessage is what a 500 says: the cause is in the log only.
const serverErrorMessage = "Something went wrong on flowgate's side; the server log has the details."

func (c *Console) serverError(w http.ResponseWriter, r *http.Request, err error) {
	c.log.Error("console error", "method", r.Method, "path", r.URL.Path, "err", err)
	c.errorPage(w, r, http.StatusInternalServerError, serverErrorMessage)
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	c.errorPage(w, r, http.StatusNotFound, "There is no such page, or what it showed has been deleted.")
}

// storeError answers a store error that is not a field error.
func (c *Console) storeError(w http.ResponseWriter, r *http.Request, err error) {
	var conflict *store.ConflictError
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.notFound(w, r)
	case errors.As(err, &conflict):
		c.errorPage(w, r, http.StatusConflict, conflict.Message)
	default:
		c.serverError(w, r, err)
	}
}

func (c *Console) actor(r *http.Request) store.Actor {
	if u := sessionFrom(r).user; u != nil {
		return store.Actor{Kind: "user", Name: u.Email}
	}
	return store.System("console")
}

func pathInt(r *http.Request, name string) (int64, bool) {
	id, err := strconv.ParseInt(chi.URLParam(r, name), 10, 64)
	return id, err == nil && id > 0
}

// localPath accepts only a path of this site as a redirect target, and
// answers "/" for anything else. The value must parse with net/url without
// scheme, host or user, start with a single "/" (not "//", not "/\"), and
// hold no backslash and no control character: browsers drop tabs and line
// breaks from URLs and read "\" as "/", so "/\t/evil.test" would be
// "//evil.test" to them. The decoded path must not start with "//" either.
func localPath(p string) string {
	if len(p) > 2048 || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return "/"
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' || (r >= 0x80 && r < 0xa0) {
			return "/"
		}
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") || strings.Contains(u.Path, "\\") {
		return "/"
	}
	return p
}

// seeOther redirects after a successful POST.
func seeOther(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}
