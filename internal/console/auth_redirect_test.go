package console

import "testing"

// Item 4: next accepts only a path of this site.
func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/domains":                  "/domains",
		"/connectors/inbound/1?x=1": "/connectors/inbound/1?x=1",
		"/wizard/a/2#top":           "/wizard/a/2#top",
		"":                          "/",
		"domains":                   "/",
		"https://evil.test/":        "/",
		"//evil.test/":              "/",
		"/\\evil.test":              "/",
		"/\t/evil.test/":            "/",
		"/\n/evil.test/":            "/",
		"/\r/evil.test/":            "/",
		"\t//evil.test/":            "/",
		"/x\\y":                     "/",
		"/%2F/evil.test":            "/",
		"/%5Cevil.test":             "/",
		"/\x7f/evil.test":           "/",
		"/\u0085/evil.test":         "/",
		"javascript:alert(1)":       "/",
		"/%zz":                      "/",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}
