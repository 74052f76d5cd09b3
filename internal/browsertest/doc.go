// Package browsertest holds the end-to-end tests of the admin console: they
// run flowgate's whole HTTP handler over a real store and drive it with
// headless Chromium through the Chrome DevTools Protocol (chromedp).
//
// The tests skip when Chromium is not installed, unless
// FLOWGATE_TEST_REQUIRE_BROWSER=1 (CI sets it), and write a full-page
// screenshot of every page they check to FLOWGATE_SCREENSHOT_DIR, or to a
// temporary directory.
package browsertest
