package console

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/web"
)

// setupOpen reports whether the one-time first-admin page may be shown.
func (c *Console) setupOpen(w http.ResponseWriter, r *http.Request) bool {
	n, err := c.store.CountUsers(r.Context())
	if err != nil {
		c.serverError(w, r, err)
		return false
	}
	if n > 0 {
		seeOther(w, r, "/signin")
		return false
	}
	return true
}

func (c *Console) setupForm(w http.ResponseWriter, r *http.Request) {
	if !c.setupOpen(w, r) {
		return
	}
	c.render(w, r, http.StatusOK, web.Setup(web.Page{Title: "Create the first admin"}, web.SignInForm{}))
}

func (c *Console) setup(w http.ResponseWriter, r *http.Request) {
	if !c.setupOpen(w, r) {
		return
	}
	email, password := r.PostFormValue("email"), r.PostFormValue("password")
	f := web.SignInForm{Email: email, Errors: web.Errors{}}
	if password != r.PostFormValue("password2") {
		f.Errors["password2"] = "the two passwords differ"
	}
	var u *store.User
	var err error
	if len(f.Errors) == 0 {
		u, err = c.store.CreateFirstAdmin(r.Context(), email, password)
	}
	var fe connector.FieldErrors
	switch {
	case len(f.Errors) > 0:
	case errors.As(err, &fe):
		for k, v := range fe {
			f.Errors[k] = v
		}
	case errors.Is(err, store.ErrSetupDone):
		seeOther(w, r, "/signin")
		return
	case err != nil:
		c.serverError(w, r, err)
		return
	}
	if len(f.Errors) > 0 {
		c.render(w, r, http.StatusBadRequest, web.Setup(web.Page{Title: "Create the first admin"}, f))
		return
	}
	if err := c.sessions.start(r, w, sessionFrom(r), u); err != nil {
		c.serverError(w, r, err)
		return
	}
	seeOther(w, r, "/connectors")
}

func (c *Console) signInForm(w http.ResponseWriter, r *http.Request) {
	n, err := c.store.CountUsers(r.Context())
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	if n == 0 {
		seeOther(w, r, "/setup")
		return
	}
	if sessionFrom(r).user != nil {
		seeOther(w, r, localPath(r.URL.Query().Get("next")))
		return
	}
	c.render(w, r, http.StatusOK, web.SignIn(web.Page{Title: "Sign in"}, web.SignInForm{Next: r.URL.Query().Get("next")}))
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	email, password, next := r.PostFormValue("email"), r.PostFormValue("password"), r.PostFormValue("next")
	if wait, blocked := c.throttle.blocked(r, email); blocked {
		c.log.Warn("console sign-in throttled", "email", email, "client", r.RemoteAddr)
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		c.render(w, r, http.StatusTooManyRequests, web.SignIn(web.Page{Title: "Sign in"}, web.SignInForm{
			Email: email, Next: next, Error: fmt.Sprintf("Too many failed sign-ins. Try again in %d minutes.", int(wait.Minutes())+1),
		}))
		return
	}
	u, err := c.store.Authenticate(r.Context(), email, password)
	if errors.Is(err, store.ErrBadCredentials) {
		c.throttle.failed(r, email)
		c.log.Info("console sign-in refused", "email", email, "client", r.RemoteAddr)
		c.render(w, r, http.StatusUnauthorized, web.SignIn(web.Page{Title: "Sign in"}, web.SignInForm{
			Email: email, Next: next, Error: "Wrong e-mail address or password.",
		}))
		return
	}
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	c.throttle.succeeded(r, email)
	if err := c.sessions.start(r, w, sessionFrom(r), u); err != nil {
		c.serverError(w, r, err)
		return
	}
	seeOther(w, r, localPath(next))
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	if err := c.sessions.end(r, w, sessionFrom(r)); err != nil {
		c.serverError(w, r, err)
		return
	}
	seeOther(w, r, "/signin")
}
