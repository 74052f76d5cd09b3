// Package static holds the console's stylesheet and other assets, embedded
// in the binary: the console runs offline, with no CDN.
package static

import "embed"

// FS holds the files served under /static/.
//
//go:embed *.css *.svg
var FS embed.FS
