package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/sessions"

	"github.com/flowgate/flowgate/internal/store"
)

// cookieName is the session cookie.
const cookieName = "flowgate_session"

// dbSessions is a gorilla/sessions Store that keeps sessions in the
// database: the cookie carries only a random 256-bit id, the row holds its
// hash, the user and the session's data. Server-side sessions can be ended
// (sign-out, a removed user) and survive a restart or a switch to another
// flowgate process on the same database.
type dbSessions struct {
	st     *store.Store
	ttl    time.Duration
	secure func(*http.Request) bool // whether the cookie must be Secure; nil: only over TLS
}

func newDBSessions(st *store.Store, ttl time.Duration) *dbSessions {
	return &dbSessions{st: st, ttl: ttl}
}

func (d *dbSessions) options(r *http.Request) *sessions.Options {
	secure := r.TLS != nil
	if d.secure != nil {
		secure = d.secure(r)
	}
	return &sessions.Options{
		Path:     "/",
		MaxAge:   int(d.ttl / time.Second),
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// Get implements sessions.Store.
func (d *dbSessions) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(d, name)
}

// New implements sessions.Store: it loads the session the cookie names, or
// returns a new, empty one.
func (d *dbSessions) New(r *http.Request, name string) (*sessions.Session, error) {
	s := sessions.NewSession(d, name)
	s.Options = d.options(r)
	s.IsNew = true
	c, err := r.Cookie(name)
	if err != nil {
		return s, nil
	}
	row, user, err := d.st.GetSession(r.Context(), c.Value)
	if errors.Is(err, store.ErrNotFound) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	s.ID = c.Value
	s.IsNew = false
	s.Values["user"] = user
	s.Values["data"] = row.Data
	return s, nil
}

// Save implements sessions.Store: a session without an id is created for
// Values["user_id"]; MaxAge < 0 ends the session.
func (d *dbSessions) Save(r *http.Request, w http.ResponseWriter, s *sessions.Session) error {
	if s.Options.MaxAge < 0 {
		if s.ID != "" {
			if err := d.st.DeleteSession(r.Context(), s.ID); err != nil {
				return err
			}
		}
		http.SetCookie(w, sessions.NewCookie(s.Name(), "", s.Options))
		return nil
	}
	data, _ := s.Values["data"].(string)
	if s.ID == "" {
		uid, ok := s.Values["user_id"].(int64)
		if !ok {
			return errors.New("session: no user to start a session for")
		}
		id, err := d.st.CreateSession(r.Context(), uid, data, d.ttl)
		if err != nil {
			return err
		}
		s.ID = id
		http.SetCookie(w, sessions.NewCookie(s.Name(), s.ID, s.Options))
		return nil
	}
	return d.st.SaveSession(r.Context(), s.ID, data)
}

// session is a request's view of its session.
type session struct {
	raw  *sessions.Session
	user *store.User // nil: not signed in
	data sessionData
}

// sessionData is what a session keeps server-side.
type sessionData struct {
	Drafts map[string]*draft `json:"drafts,omitempty"`
	Flash  string            `json:"flash,omitempty"`
	// FlashWarns: the flash reports a failure, shown as a warning.
	FlashWarns bool `json:"flash_warns,omitempty"`
	// Forms: what a form's last post was refused for, by the path of the
	// page that shows the form (see Console.refuse).
	Forms map[string]*refusedForm `json:"forms,omitempty"`
}

// refusedForm is a post refused with field errors: what was typed, and
// the errors, for the form's page to show again.
type refusedForm struct {
	Values    map[string]string `json:"values,omitempty"`
	Errors    map[string]string `json:"errors,omitempty"`
	FormError string            `json:"form_error,omitempty"`
}

// value is what was typed into field name.
func (f *refusedForm) value(name string) string {
	if f == nil {
		return ""
	}
	return f.Values[name]
}

func (d *dbSessions) load(r *http.Request) (*session, error) {
	raw, err := d.Get(r, cookieName)
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	s := &session{raw: raw}
	if u, ok := raw.Values["user"].(*store.User); ok {
		s.user = u
		if text, _ := raw.Values["data"].(string); text != "" {
			if err := json.Unmarshal([]byte(text), &s.data); err != nil {
				// Data from an older version: start over rather than fail.
				s.data = sessionData{}
			}
		}
	}
	return s, nil
}

// save writes the session's data back.
func (d *dbSessions) save(r *http.Request, w http.ResponseWriter, s *session) error {
	if s.user == nil || s.raw == nil {
		return nil
	}
	b, err := json.Marshal(s.data)
	if err != nil {
		return err
	}
	s.raw.Values["data"] = string(b)
	return s.raw.Save(r, w)
}

// start signs a user in with a brand-new session id (the old session, if
// any, is ended first, so an id planted before sign-in is worthless).
func (d *dbSessions) start(r *http.Request, w http.ResponseWriter, old *session, u *store.User) error {
	if old != nil && old.raw != nil && old.raw.ID != "" {
		if err := d.st.DeleteSession(r.Context(), old.raw.ID); err != nil {
			return err
		}
	}
	s := sessions.NewSession(d, cookieName)
	s.Options = d.options(r)
	s.Values["user_id"] = u.ID
	s.Values["data"] = "{}"
	return s.Save(r, w)
}

// end signs the session out.
func (d *dbSessions) end(r *http.Request, w http.ResponseWriter, s *session) error {
	if s.raw == nil {
		return nil
	}
	s.raw.Options = d.options(r)
	s.raw.Options.MaxAge = -1
	return s.raw.Save(r, w)
}
