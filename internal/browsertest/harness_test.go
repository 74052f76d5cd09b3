package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
	"github.com/flowgate/flowgate/internal/testutil/webtest"
	"github.com/flowgate/flowgate/internal/validation"
)

const (
	// RequireBrowserEnv, when "1", makes a missing Chromium a test failure
	// instead of a skip (CI sets it).
	RequireBrowserEnv = "FLOWGATE_TEST_REQUIRE_BROWSER"
	// ScreenshotDirEnv names the directory the screenshots go to; without
	// it they go to a temporary directory removed after the test.
	ScreenshotDirEnv = "FLOWGATE_SCREENSHOT_DIR"
	chromiumPath     = "/usr/bin/chromium"
	windowWidth      = 1280 // the browser window's width: a desktop's

	// testTimeout bounds one test function's browser. A test takes a few
	// seconds; the bound only keeps a hung browser from hanging the suite.
	testTimeout = 2 * time.Minute

	adminEmail  = "admin@contoso.com"
	viewerEmail = "viewer@contoso.com"
	password    = "correct horse battery staple"
)

// findChromium returns the browser to drive, or skips the test (fails it
// when RequireBrowserEnv=1).
func findChromium(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat(chromiumPath); err == nil && !fi.IsDir() {
		return chromiumPath
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("Chromium not found at %s nor as chromium or chromium-browser in PATH; install it (apt-get install chromium) to run the console's browser tests", chromiumPath)
	if os.Getenv(RequireBrowserEnv) == "1" {
		t.Fatalf("browser required (%s=1): %s", RequireBrowserEnv, msg)
	}
	t.Skipf("SKIP browser tests: %s, or set %s=1 to make this a failure", msg, RequireBrowserEnv)
	return ""
}

// server is flowgate's whole HTTP surface over a real SQLite store, as
// `flowgate serve` wires it.
type server struct {
	st  *store.Store
	url string
}

func startServer(t *testing.T) *server {
	t.Helper()
	st := openSQLite(t)
	srv := webtest.Serve(t, st, webtest.Options{})
	return &server{st: st, url: srv.URL}
}

// startValidatingServer is startServer with the Validate and Activate
// pages: outbound validation connects to the connectors' real smart hosts
// (addresses resolve through the system resolver; 127.0.0.1:port needs
// none).
func startValidatingServer(t *testing.T) *server {
	t.Helper()
	st := openSQLite(t)
	svc := &validation.Service{Store: st, Outbound: &validation.Outbound{
		Hostname: "gw.contoso.test", Resolver: &delivery.Resolver{}, Timeout: 5 * time.Second,
	}}
	srv := webtest.Serve(t, st, webtest.Options{Validation: svc})
	return &server{st: st, url: srv.URL}
}

func openSQLite(t *testing.T) *store.Store {
	t.Helper()
	for _, e := range testutil.Engines {
		if e.Name == "sqlite" {
			return testutil.OpenStore(t, e)
		}
	}
	t.Fatal("testutil has no sqlite engine")
	return nil
}

// seedAdmin creates the first admin directly in the store.
func (s *server) seedAdmin(t *testing.T) {
	t.Helper()
	if _, err := s.st.CreateFirstAdmin(context.Background(), adminEmail, password); err != nil {
		t.Fatal(err)
	}
}

// shots numbers and writes the screenshots of one test function.
type shots struct {
	dir string
	mu  sync.Mutex
	n   int
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func newShots(t *testing.T) *shots {
	t.Helper()
	dir := os.Getenv(ScreenshotDirEnv)
	if dir == "" {
		dir = t.TempDir()
	} else {
		dir = filepath.Join(dir, unsafeName.ReplaceAllString(t.Name(), "_"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Drop the screenshots of an earlier run, so the directory shows
		// this run only.
		old, _ := filepath.Glob(filepath.Join(dir, "*.png"))
		for _, f := range old {
			_ = os.Remove(f)
		}
	}
	t.Logf("screenshots of %s: %s", t.Name(), dir)
	return &shots{dir: dir}
}

func (s *shots) next(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return filepath.Join(s.dir, fmt.Sprintf("%02d-%s.png", s.n, unsafeName.ReplaceAllString(name, "-")))
}

// tab is one browser tab on the server, bound to a test.
type tab struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots *shots

	mu      *sync.Mutex
	dialogs *[]string // JavaScript dialogs that opened (there must be none)
}

// newTab starts a headless Chromium for the test and opens a tab on base.
func newTab(t *testing.T, base string) *tab {
	t.Helper()
	exe := findChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(windowWidth, 900),
	)
	parent, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(parent, opts...)
	t.Cleanup(acancel)
	ctx, ccancel := chromedp.NewContext(actx)
	t.Cleanup(ccancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	b := &tab{t: t, ctx: ctx, base: base, shots: newShots(t), mu: &sync.Mutex{}, dialogs: &[]string{}}

	// Record and dismiss any alert, confirm or prompt: the console has no
	// script, so one would mean injected markup ran.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			*b.dialogs = append(*b.dialogs, string(ev.Type)+": "+ev.Message)
			b.mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return b
}

// in returns the tab bound to a subtest.
func (b *tab) in(t *testing.T) *tab {
	c := *b
	c.t = t
	return &c
}

func (b *tab) openedDialogs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(*b.dialogs)
}

// fatalf fails the test with the page's address and text, and a
// screenshot of it.
func (b *tab) fatalf(format string, args ...any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	where, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		file := b.shots.next("FAILED")
		if os.WriteFile(file, png, 0o644) == nil {
			where += " (screenshot " + file + ")"
		}
	}
	b.t.Fatalf(format+"\n--- page %s\n%s\n---", append(args, where, text)...)
}

// js evaluates a JavaScript expression in the page and decodes its value.
func js[T any](b *tab, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// q quotes s as a JavaScript string literal (also valid as a CSS string).
func q(s string) string {
	var out strings.Builder
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(out.String(), "\n")
}

// open loads a path and returns the HTTP status of the page it ends on.
func (b *tab) open(path string) int64 {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(b.base+path))
	if err != nil {
		b.fatalf("open %s: %v", path, err)
	}
	return resp.Status
}

// click clicks the element, waits for the page the click loads, and
// returns its HTTP status.
func (b *tab) click(sel string) int64 {
	b.t.Helper()
	b.mustBeVisible(sel)
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.fatalf("click %s: %v", sel, err)
	}
	if resp == nil {
		b.fatalf("click %s loaded no page", sel)
	}
	return resp.Status
}

// clickOK clicks and expects the page it loads to answer 200.
func (b *tab) clickOK(sel, what string) {
	b.t.Helper()
	if st := b.click(sel); st != 200 {
		b.fatalf("%s: HTTP %d, want 200", what, st)
	}
}

// clickRefused clicks a form's button whose post must be refused: the post
// redirects to the form's page, which shows what was wrong. The page the
// tab ends on is never the post's own answer, so Back and reload work.
func (b *tab) clickRefused(sel, what string) {
	b.t.Helper()
	st := b.click(sel)
	redirects := js[int](b, `performance.getEntriesByType("navigation")[0].redirectCount`)
	if st != 200 || redirects == 0 {
		b.fatalf("%s: HTTP %d after %d redirects; want the post refused with a redirect to the form's page (200)", what, st, redirects)
	}
}

func (b *tab) exists(sel string) bool {
	b.t.Helper()
	return js[bool](b, `document.querySelector(`+q(sel)+`) !== null`)
}

// mustExist fails at once when sel matches nothing (chromedp's queries
// would wait for it until the timeout).
func (b *tab) mustExist(sel string) {
	b.t.Helper()
	if !b.exists(sel) {
		b.fatalf("no element matches %s", sel)
	}
}

// mustBeVisible fails at once when sel matches nothing or an element
// without a box to click (hidden, or text of size 0); chromedp's click
// would wait for it to show until the timeout.
func (b *tab) mustBeVisible(sel string) {
	b.t.Helper()
	b.mustExist(sel)
	if !js[bool](b, `(() => { const r = document.querySelector(`+q(sel)+`).getBoundingClientRect(); return r.width > 0 && r.height > 0; })()`) {
		b.fatalf("%s is on the page but not visible: it has no box to click", sel)
	}
}

// fill replaces the value of a text field: it focuses the field, empties
// it and enters the text as the browser's input (as typing or pasting
// would; one call rather than three key events a character).
func (b *tab) fill(sel, value string) {
	b.t.Helper()
	b.mustExist(sel)
	js[chromedp.Void](b, `document.querySelector(`+q(sel)+`).value = ""`)
	if err := chromedp.Do(b.ctx, chromedp.Focus(chromedp.CSS(sel)), chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: value})
		return err
	})); err != nil {
		b.fatalf("type into %s: %v", sel, err)
	}
	if got := b.value(sel); got != value {
		b.fatalf("typed %q into %s, it holds %q", value, sel, got)
	}
}

// choose clicks a radio button.
func (b *tab) choose(name, value string) {
	b.t.Helper()
	sel := fmt.Sprintf(`input[type=radio][name=%q][value=%q]`, name, value)
	b.mustExist(sel)
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		b.fatalf("choose %s=%s: %v", name, value, err)
	}
	b.wantChecked(sel, true)
}

// tick sets a checkbox by clicking it when needed.
func (b *tab) tick(name string, on bool) {
	b.t.Helper()
	sel := fmt.Sprintf(`input[type=checkbox][name=%q]`, name)
	if b.checked(sel) != on {
		if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
			b.fatalf("click %s: %v", sel, err)
		}
	}
	b.wantChecked(sel, on)
}

func (b *tab) value(sel string) string {
	b.t.Helper()
	b.mustExist(sel)
	return js[string](b, `document.querySelector(`+q(sel)+`).value`)
}

func (b *tab) checked(sel string) bool {
	b.t.Helper()
	b.mustExist(sel)
	return js[bool](b, `document.querySelector(`+q(sel)+`).checked`)
}

// text is the rendered text of the first element matching sel.
func (b *tab) text(sel string) string {
	b.t.Helper()
	b.mustExist(sel)
	return strings.TrimSpace(js[string](b, `document.querySelector(`+q(sel)+`).innerText`))
}

// texts are the rendered texts of every element matching sel.
func (b *tab) texts(sel string) []string {
	b.t.Helper()
	return js[[]string](b, `Array.from(document.querySelectorAll(`+q(sel)+`), e => e.innerText.trim())`)
}

// rows are the cells' texts of the table rows matching sel.
func (b *tab) rows(sel string) [][]string {
	b.t.Helper()
	return js[[][]string](b, `Array.from(document.querySelectorAll(`+q(sel)+`), tr => Array.from(tr.cells, td => td.innerText.trim()))`)
}

// path is the address bar's path and query.
func (b *tab) path() string {
	b.t.Helper()
	return js[string](b, `location.pathname + location.search`)
}

// waitPath waits until the page the browser shows has a path matching re
// (a page that reloads itself, like a validation run in progress, gets
// there on its own), and returns it. The test's browser timeout bounds it.
func (b *tab) waitPath(re string) string {
	b.t.Helper()
	rx := regexp.MustCompile("^" + re + "$")
	for {
		p, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.readyState === "complete" ? location.pathname + location.search : ""`))
		if err == nil && rx.MatchString(p) {
			return p
		}
		if b.ctx.Err() != nil {
			b.fatalf("the browser never reached a page matching %s", re)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *tab) wantValue(sel, want string) {
	b.t.Helper()
	if got := b.value(sel); got != want {
		b.fatalf("%s holds %q, want %q", sel, got, want)
	}
}

func (b *tab) wantChecked(sel string, want bool) {
	b.t.Helper()
	if got := b.checked(sel); got != want {
		b.fatalf("%s checked = %v, want %v", sel, got, want)
	}
}

func (b *tab) wantText(sel, want string) {
	b.t.Helper()
	if got := b.text(sel); !strings.Contains(got, want) {
		b.fatalf("text of %s = %q, want it to contain %q", sel, got, want)
	}
}

func (b *tab) wantAbsent(sel, why string) {
	b.t.Helper()
	if b.exists(sel) {
		b.fatalf("%s is on the page, but %s", sel, why)
	}
}

func (b *tab) wantPath(re string) string {
	b.t.Helper()
	p := b.path()
	if !regexp.MustCompile(`^` + re + `$`).MatchString(p) {
		b.fatalf("at %s, want a path matching %s", p, re)
	}
	return p
}

func (b *tab) wantStatus(got, want int64, what string) {
	b.t.Helper()
	if got != want {
		b.fatalf("%s: HTTP %d, want %d", what, got, want)
	}
}

// wantFieldError checks that the error of a field is shown, says want,
// and sits next to the field: in the same .field or fieldset as the
// element fieldSel.
func (b *tab) wantFieldError(key, fieldSel, want string) {
	b.t.Helper()
	type result struct {
		Found, Visible, Near bool
		Text, Box            string
	}
	r := js[result](b, fmt.Sprintf(`(() => {
		const e = document.getElementById(%s);
		if (!e) return {Found: false};
		const f = document.querySelector(%s);
		const box = e.parentElement;
		return {Found: true, Visible: e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden",
			Near: !!f && box.contains(f), Text: e.innerText.trim(), Box: box.tagName.toLowerCase() + "." + box.className};
	})()`, q("err-"+key), q(fieldSel)))
	switch {
	case !r.Found:
		b.fatalf("no error shown for %s (#err-%s); want %q", key, key, want)
	case !r.Visible:
		b.fatalf("the error of %s is not visible", key)
	case !strings.Contains(r.Text, want):
		b.fatalf("error of %s says %q, want it to contain %q", key, r.Text, want)
	case !r.Near:
		b.fatalf("error of %s (%q) is in %s, which does not hold its field %s", key, r.Text, r.Box, fieldSel)
	}
}

// atStep checks that the wizard shows step n, labelled label.
func (b *tab) atStep(n int, label string) {
	b.t.Helper()
	b.wantPath(fmt.Sprintf(`/wizard/[0-9a-f]+/%d(\?check=1)?`, n))
	if got := b.text(`ol.steps li[aria-current="step"]`); got != label {
		b.fatalf("current step is %q, want %q", got, label)
	}
}

// wantReview checks that the review list holds each line, word for word.
func (b *tab) wantReview(sel string, lines ...string) {
	b.t.Helper()
	got := b.texts(sel)
	for _, l := range lines {
		if !slices.Contains(got, l) {
			b.fatalf("%s lacks the line %q; it has:\n  %s", sel, l, strings.Join(got, "\n  "))
		}
	}
}

// shot saves a full-page screenshot.
func (b *tab) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(b.shots.next(name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// phone makes the viewport 390 px wide, as a phone's.
func (b *tab) phone() {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait, chromedp.EmulateScale(2))); err != nil {
		b.fatalf("emulate a phone: %v", err)
	}
}

// desktop undoes phone: it clears the device emulation, so the page is
// laid out in the browser window again. (chromedp.ResetViewport is not
// enough: its zero-sized override keeps the phone's 390 px layout.)
func (b *tab) desktop() {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, emulation.SetTouchEmulationEnabled, emulation.SetTouchEmulationEnabledParams{Enabled: false})
		return err
	})); err != nil {
		b.fatalf("reset the viewport: %v", err)
	}
	if w := js[int](b, `window.innerWidth`); w != windowWidth {
		b.fatalf("the viewport is %d px wide after leaving the phone, want %d", w, windowWidth)
	}
}

// wantNoSideScroll checks that the page is not wider than the viewport.
func (b *tab) wantNoSideScroll() {
	b.t.Helper()
	type widths struct{ Page, Viewport int }
	w := js[widths](b, `({Page: document.documentElement.scrollWidth, Viewport: window.innerWidth})`)
	if w.Page > w.Viewport {
		b.fatalf("the page is %d px wide in a %d px viewport: it scrolls sideways", w.Page, w.Viewport)
	}
}

// signIn signs in on the sign-in page and expects to land on landing.
func (b *tab) signIn(email, pw, landing string) {
	b.t.Helper()
	if !strings.HasPrefix(b.path(), "/signin") {
		b.open("/signin")
	}
	b.wantPath(`/signin(\?.*)?`)
	b.fill("#email", email)
	b.fill("#password", pw)
	b.clickOK(`form[action="/signin"] button[type=submit]`, "sign in as "+email)
	b.wantPath(regexp.QuoteMeta(landing))
	b.wantText("header .who", email)
}

// signOut presses Sign out in the header.
func (b *tab) signOut() {
	b.t.Helper()
	b.clickOK(`header form[action="/signout"] button`, "sign out")
	b.wantPath(`/signin`)
	b.wantAbsent("header .who", "the user signed out")
}

// Wizard buttons.
const (
	nextButton = `button[name=nav][value=next]`
	backButton = `button[name=nav][value=back]`
	saveButton = `button[name=nav][value=save]`
)
