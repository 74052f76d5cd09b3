// Package web is flowgate's admin console: server-rendered templ pages
// routed with chi. The console is built by its own issue; until then the
// JSON API is the way to manage connectors.
package web
