package console

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/web"
)

// fieldErrors turns a store error into form errors; ok is false for any
// other error.
func fieldErrors(err error) (web.Errors, bool) {
	var fe connector.FieldErrors
	var conflict *store.ConflictError
	switch {
	case errors.As(err, &fe):
		return web.Errors(fe), true
	case errors.As(err, &conflict):
		return web.Errors{conflict.Field: conflict.Message}, true
	}
	return nil, false
}

func (c *Console) domainsPage(w http.ResponseWriter, r *http.Request, v web.DomainsView, status int) {
	list, err := c.store.ListAcceptedDomains(r.Context())
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	p := &v.DomainsPage
	p.Page = c.page(w, r, "Accepted domains", "domains")
	v.ExternalSenders = map[int64]bool{}
	for _, d := range list {
		p.Rows = append(p.Rows, web.DomainRow{ID: d.ID, Domain: d.Domain, Type: string(d.DomainType), CreatedAt: d.CreatedAt})
		v.ExternalSenders[d.ID] = d.AllowExternalSenders
	}
	if p.Errors == nil {
		p.Errors = web.Errors{}
	}
	if p.FormType == "" {
		p.FormType = string(connector.Authoritative)
	}
	c.render(w, r, status, web.DomainsWith(v))
}

func (c *Console) listDomains(w http.ResponseWriter, r *http.Request) {
	v := web.DomainsView{}
	if f := c.refused(w, r, "/domains"); f != nil {
		v.FormDomain, v.FormType, v.Errors = f.value("domain"), f.value("domain_type"), f.Errors
		v.FormExternalSenders = f.value("allow_external_senders") == "on"
	}
	c.domainsPage(w, r, v, http.StatusOK)
}

func (c *Console) createDomain(w http.ResponseWriter, r *http.Request) {
	domain, typ := r.PostFormValue("domain"), r.PostFormValue("domain_type")
	external := r.PostFormValue("allow_external_senders") == "on"
	d, err := c.store.CreateAcceptedDomainWith(r.Context(), c.actor(r), domain, connector.DomainType(typ), store.AcceptedDomainOptions{AllowExternalSenders: external})
	if err != nil {
		if errs, ok := fieldErrors(err); ok {
			c.refuse(w, r, "/domains", &refusedForm{Errors: errs, Values: map[string]string{
				"domain": domain, "domain_type": typ, "allow_external_senders": r.PostFormValue("allow_external_senders")}})
			return
		}
		c.serverError(w, r, err)
		return
	}
	c.flash(w, r, "Added "+d.Domain+". flowgate accepts mail for it now.")
	seeOther(w, r, "/domains")
}

// domainDependents says which connectors rely on an accepted domain.
func domainDependents(domain string, conns []*store.Connector) []string {
	var out []string
	for _, conn := range conns {
		if !conn.Enabled {
			continue
		}
		switch s := conn.Spec.(type) {
		case *connector.OutboundSpec:
			if s.AllAcceptedDomains {
				out = append(out, fmt.Sprintf("Outbound connector %q carries mail for all accepted domains: it will no longer carry mail for %s.", conn.Name, domain))
				continue
			}
			for _, p := range s.RecipientDomains {
				if pat, err := connector.ParseDomainPattern(p); err == nil && pat.Matches(domain) {
					out = append(out, fmt.Sprintf("Outbound connector %q routes mail for %s (%s): without the accepted domain, flowgate refuses mail for %s from the Internet, so only your own server's mail reaches it.", conn.Name, domain, p, domain))
					break
				}
			}
		case *connector.InboundSpec:
			if s.ConnectorType == connector.OnPremises {
				out = append(out, fmt.Sprintf("Inbound connector %q lets your email server relay mail from accepted sender domains: mail from senders in %s will no longer be relayed to the Internet.", conn.Name, domain))
			}
		}
	}
	return out
}

func (c *Console) loadDomain(w http.ResponseWriter, r *http.Request) (*store.AcceptedDomain, bool) {
	id, ok := pathInt(r, "id")
	if !ok {
		c.notFound(w, r)
		return nil, false
	}
	d, err := c.store.GetAcceptedDomain(r.Context(), id)
	if err != nil {
		c.storeError(w, r, err)
		return nil, false
	}
	return d, true
}

func (c *Console) confirmDeleteDomain(w http.ResponseWriter, r *http.Request) {
	d, ok := c.loadDomain(w, r)
	if !ok {
		return
	}
	conns, err := c.allConnectors(r)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	cp := web.ConfirmPage{
		Page:    c.page(w, r, "Remove "+d.Domain, "domains"),
		Heading: "Remove " + d.Domain + "?",
		Message: fmt.Sprintf("After removal flowgate refuses mail for %s from the Internet (550 5.7.64, relay access denied).", d.Domain),
		Action:  fmt.Sprintf("/domains/%d/delete", d.ID), Button: "Remove domain", Cancel: "/domains",
		Warnings: domainDependents(d.Domain, conns),
	}
	c.render(w, r, http.StatusOK, web.Confirm(cp))
}

func (c *Console) deleteDomain(w http.ResponseWriter, r *http.Request) {
	d, ok := c.loadDomain(w, r)
	if !ok {
		return
	}
	if err := c.store.DeleteAcceptedDomain(r.Context(), c.actor(r), d.ID); err != nil {
		c.failed(w, r, "/domains", err)
		return
	}
	c.flash(w, r, "Removed "+d.Domain+".")
	seeOther(w, r, "/domains")
}

func (c *Console) usersPage(w http.ResponseWriter, r *http.Request, p web.UsersPage, status int) {
	users, err := c.store.ListUsers(r.Context())
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	tokens, err := c.store.ListTokens(r.Context())
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	p.Page = c.page(w, r, "Users and API tokens", "users")
	me := sessionFrom(r).user
	for _, u := range users {
		p.Users = append(p.Users, web.UserRow{ID: u.ID, Email: u.Email, Role: string(u.Role), CreatedAt: u.CreatedAt, Self: me != nil && me.ID == u.ID})
	}
	for _, t := range tokens {
		p.Tokens = append(p.Tokens, web.TokenRow{ID: t.ID, Name: t.Name, Prefix: t.TokenPrefix, Role: string(t.Role), CreatedBy: who(t.CreatedBy), CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt})
	}
	if p.UserErrors == nil {
		p.UserErrors = web.Errors{}
	}
	if p.TokenErrors == nil {
		p.TokenErrors = web.Errors{}
	}
	if p.UserRole == "" {
		p.UserRole = string(store.RoleViewer)
	}
	if p.TokenRole == "" {
		p.TokenRole = string(store.RoleViewer)
	}
	c.render(w, r, status, web.Users(p))
}

func (c *Console) listUsers(w http.ResponseWriter, r *http.Request) {
	p := web.UsersPage{}
	if f := c.refused(w, r, "/users"); f != nil {
		// The page has two forms; the refused one is named by its fields.
		if _, user := f.Values["email"]; user {
			p.UserEmail, p.UserRole, p.UserErrors = f.value("email"), f.value("role"), f.Errors
		} else {
			p.TokenName, p.TokenRole, p.TokenErrors = f.value("name"), f.value("role"), f.Errors
		}
	}
	c.usersPage(w, r, p, http.StatusOK)
}

func (c *Console) createUser(w http.ResponseWriter, r *http.Request) {
	email, role := r.PostFormValue("email"), r.PostFormValue("role")
	u, err := c.store.CreateUser(r.Context(), c.actor(r), email, r.PostFormValue("password"), store.Role(role))
	if err != nil {
		if errs, ok := fieldErrors(err); ok {
			c.refuse(w, r, "/users", &refusedForm{Errors: errs, Values: map[string]string{"email": email, "role": role}})
			return
		}
		c.serverError(w, r, err)
		return
	}
	c.flash(w, r, fmt.Sprintf("Added %s as %s.", u.Email, u.Role))
	seeOther(w, r, "/users")
}

func (c *Console) deleteUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathInt(r, "id")
	if !ok {
		c.notFound(w, r)
		return
	}
	if me := sessionFrom(r).user; me != nil && me.ID == id {
		c.flashWarning(w, r, "You cannot remove your own account; ask another admin.")
		seeOther(w, r, "/users")
		return
	}
	u, err := c.store.GetUser(r.Context(), id)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	if err := c.store.DeleteUser(r.Context(), c.actor(r), id); err != nil {
		c.failed(w, r, "/users", err)
		return
	}
	c.flash(w, r, "Removed "+u.Email+" and ended their sessions.")
	seeOther(w, r, "/users")
}

func (c *Console) createToken(w http.ResponseWriter, r *http.Request) {
	name, role := r.PostFormValue("name"), r.PostFormValue("role")
	token, t, err := c.store.CreateToken(r.Context(), c.actor(r), name, store.Role(role))
	if err != nil {
		if errs, ok := fieldErrors(err); ok {
			c.refuse(w, r, "/users", &refusedForm{Errors: errs, Values: map[string]string{"name": name, "role": role}})
			return
		}
		c.serverError(w, r, err)
		return
	}
	// The one exception to redirecting after a post: the token is
	// rendered in this response only, never kept in the session, so no
	// copy of the secret rests anywhere; the page is sent with
	// Cache-Control: no-store, and Back to it cannot show it again.
	c.usersPage(w, r, web.UsersPage{NewToken: token, NewTokenFor: t.Name}, http.StatusOK)
}

func (c *Console) revokeToken(w http.ResponseWriter, r *http.Request) {
	id, ok := pathInt(r, "id")
	if !ok {
		c.notFound(w, r)
		return
	}
	if err := c.store.RevokeToken(r.Context(), c.actor(r), id); err != nil {
		c.storeError(w, r, err)
		return
	}
	c.flash(w, r, "Revoked the API token.")
	seeOther(w, r, "/users")
}
