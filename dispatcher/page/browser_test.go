package page

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
)

const chromiumPath = "/usr/bin/chromium"

// style is what a browser computes for a page: each kind of page keeps
// the look it had before the stylesheets were merged.
type style struct {
	BodyMaxWidth, BodyMarginTop, BodyColor string
	ButtonBackground, ButtonWeight         string
}

const styleJS = `(() => {
	const b = getComputedStyle(document.body), btn = document.querySelector("button");
	const s = btn ? getComputedStyle(btn) : {};
	return {BodyMaxWidth: b.maxWidth, BodyMarginTop: b.marginTop, BodyColor: b.color,
		ButtonBackground: s.backgroundColor || "", ButtonWeight: s.fontWeight || ""};
})()`

// TestBrowserStyles opens the pages in headless Chromium, served with
// their headers, so that the Content-Security-Policy applies to the
// inline stylesheet as it does in production.
func TestBrowserStyles(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("browser tests need Chromium at %s (apt-get install -y chromium); skipped outside CI", chromiumPath)
		}
		t.Fatalf("browser tests need Chromium at %s: %v", chromiumPath, err)
	}
	pages := map[string]fixture{}
	for _, f := range fixtures() {
		pages["/"+f.name] = f
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		f.render(w, French, plain)
	}))
	t.Cleanup(srv.Close)

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()))
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	t.Cleanup(cancel)

	message := style{"576px", "48px", "rgb(34, 34, 34)", "rgb(51, 51, 51)", "600"}
	signup := style{"576px", "32px", "rgb(34, 34, 34)", "rgb(51, 51, 51)", "400"}
	preferences := style{"768px", "32px", "rgb(26, 26, 26)", "rgb(11, 79, 168)", "600"}
	noButton := func(s style) style { s.ButtonBackground, s.ButtonWeight = "", ""; return s }
	want := map[string]style{
		"message-invalid-link":     noButton(message),
		"message-signup-confirmed": noButton(message),
		"embedded-signup-failed":   noButton(message),
		"unsubscribe":              message,
		"unsubscribe-done-sms":     noButton(message),
		"confirm":                  signup,
		"form-email":               signup,
		"form-email-error":         signup,
		"form-sms-single":          signup,
		"preferences":              preferences,
		"preferences-no-address":   noButton(preferences),
	}
	got := map[string]style{}
	for path := range pages {
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+path)); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		s, err := chromedp.Run(ctx, chromedp.Evaluate[style](styleJS))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		got[path[1:]] = s
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("computed styles (-want +got):\n%s", diff)
	}
}
