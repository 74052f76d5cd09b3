package console

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

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
	c.render(w, r, http.StatusOK, web.Setup(web.Page{Title: "Create the first admin"}, web.SignInForm{}, c.security.SetupCode != ""))
}

// Limits on what the sign-in and setup forms accept: nothing longer can be
// valid, so nothing longer is throttled, logged or hashed.
const (
	maxFormBytes    = 16 << 10 // a whole form body
	maxEmailBytes   = 254      // RFC 5321's limit for a path, so for an address
	maxPasswordByte = 1024     // far over bcrypt's 72; a paste of a passphrase still fits
)

// readAuthForm parses a sign-in or setup form of at most maxFormBytes and
// checks the lengths of its e-mail address and password.
func readAuthForm(w http.ResponseWriter, r *http.Request) (web.Errors, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, false
	}
	errs := web.Errors{}
	if len(r.PostFormValue("email")) > maxEmailBytes {
		errs["email"] = fmt.Sprintf("an e-mail address has at most %d characters", maxEmailBytes)
	}
	for _, k := range []string{"password", "password2"} {
		if len(r.PostFormValue(k)) > maxPasswordByte {
			errs[k] = fmt.Sprintf("a password here has at most %d characters", maxPasswordByte)
		}
	}
	return errs, true
}

func (c *Console) setup(w http.ResponseWriter, r *http.Request) {
	errs, ok := readAuthForm(w, r)
	if !ok {
		c.errorPage(w, r, http.StatusRequestEntityTooLarge, "This form is far larger than any valid one; flowgate did not read it.")
		return
	}
	if !c.setupOpen(w, r) {
		return
	}
	needCode := c.security.SetupCode != ""
	email, password := r.PostFormValue("email"), r.PostFormValue("password")
	f := web.SignInForm{Email: email, Errors: errs}
	if errs.Has("email") {
		f.Email = ""
	}
	if needCode && subtle.ConstantTimeCompare([]byte(normalizeCode(r.PostFormValue("code"))), []byte(normalizeCode(c.security.SetupCode))) != 1 {
		f.Errors["code"] = "enter the setup code from flowgate's log (the line \"no user yet\")"
		c.log.Warn("console setup refused: wrong setup code", "client", c.security.clientIP(r).String())
	}
	// Every problem at once: a short password and a mismatch both show.
	for k, v := range store.ValidateCredentials(email, password) {
		if !f.Errors.Has(k) {
			f.Errors[k] = v
		}
	}
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
		c.render(w, r, http.StatusBadRequest, web.Setup(web.Page{Title: "Create the first admin"}, f, needCode))
		return
	}
	if err := c.sessions.start(r, w, sessionFrom(r), u); err != nil {
		c.serverError(w, r, err)
		return
	}
	seeOther(w, r, "/connectors")
}

// normalizeCode lets the setup code be typed in either case, with or
// without its dashes and spaces.
func normalizeCode(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return unicode.ToUpper(r)
	}, s)
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
	next := localPath(r.URL.Query().Get("next"))
	if sessionFrom(r).user != nil {
		seeOther(w, r, next)
		return
	}
	c.render(w, r, http.StatusOK, web.SignIn(web.Page{Title: "Sign in"}, web.SignInForm{Next: next}))
}

// signIn checks an e-mail address and password. Too long values are
// refused before anything else; then the attempt is counted by the
// throttle (see signInThrottle for the rule) before the password is
// checked, so parallel guesses cannot outrun it.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	errs, ok := readAuthForm(w, r)
	if !ok {
		c.errorPage(w, r, http.StatusRequestEntityTooLarge, "This form is far larger than any valid one; flowgate did not read it.")
		return
	}
	email, password, next := r.PostFormValue("email"), r.PostFormValue("password"), localPath(r.PostFormValue("next"))
	f := web.SignInForm{Email: email, Next: next, Errors: errs}
	if len(errs) > 0 {
		if errs.Has("email") {
			f.Email = ""
		}
		c.render(w, r, http.StatusBadRequest, web.SignIn(web.Page{Title: "Sign in"}, f))
		return
	}
	account := strings.ToLower(strings.TrimSpace(email))
	client := c.security.clientIP(r)
	res, wait, allowed := c.throttle.reserve(account, client)
	if !allowed {
		c.log.Warn("console sign-in throttled", "email", account, "client", client.String(), "wait", wait.Round(time.Second).String())
		secs := int(wait.Seconds()) + 1
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		f.Error = "Too many failed sign-ins. Try again in " + waitText(secs) + "."
		c.render(w, r, http.StatusTooManyRequests, web.SignIn(web.Page{Title: "Sign in"}, f))
		return
	}
	u, err := c.store.Authenticate(r.Context(), email, password)
	if errors.Is(err, store.ErrBadCredentials) {
		c.log.Info("console sign-in refused", "email", account, "client", client.String())
		f.Error = "Wrong e-mail address or password."
		c.render(w, r, http.StatusUnauthorized, web.SignIn(web.Page{Title: "Sign in"}, f))
		return
	}
	if err != nil {
		c.throttle.release(res)
		c.serverError(w, r, err)
		return
	}
	c.throttle.succeeded(res)
	if err := c.sessions.start(r, w, sessionFrom(r), u); err != nil {
		c.serverError(w, r, err)
		return
	}
	seeOther(w, r, next)
}

// waitText says how long secs is, in seconds under two minutes.
func waitText(secs int) string {
	if secs < 120 {
		return fmt.Sprintf("%d seconds", secs)
	}
	return fmt.Sprintf("%d minutes", (secs+59)/60)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	if err := c.sessions.end(r, w, sessionFrom(r)); err != nil {
		c.serverError(w, r, err)
		return
	}
	seeOther(w, r, "/signin")
}
