package headless_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flowline-go/flowline/internal/headless"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPageEvalScreenshotAndClose(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><title>hi</title><h1 id="h">hello</h1><script>setTimeout(function(){document.getElementById('h').textContent='later'},100);console.error('on purpose');</script>`)
	}))
	defer srv.Close()

	b := headless.ForTest(t, headless.Options{Width: 640, Height: 400})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := b.NewPage(ctx)
	require.NoError(t, err)
	require.NoError(t, p.Navigate(ctx, srv.URL+"/"))

	var title string
	require.NoError(t, p.Eval(ctx, "document.title", &title))
	assert.Equal(t, "hi", title)
	require.NoError(t, p.WaitFor(ctx, "document.getElementById('h').textContent === 'later'"))
	assert.Error(t, p.Eval(ctx, "nosuchname.x", nil), "an exception is an error")

	shot, err := p.Screenshot(ctx)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err)
	assert.Equal(t, 640, img.Bounds().Dx())
	assert.Contains(t, fmt.Sprint(p.Problems()), "on purpose", "console errors are collected")

	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	assert.ErrorIs(t, p.WaitFor(short, "false"), context.DeadlineExceeded)

	pid := b.Pid()
	require.NoError(t, b.Close())
	assert.False(t, leftover(pid), "no process of the browser is left")
	require.NoError(t, b.Close(), "idempotent")
	assert.Error(t, p.Eval(context.Background(), "1", nil), "a closed browser answers nothing")
}

func TestNavigateToNothingFails(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	b := headless.ForTest(t, headless.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := b.NewPage(ctx)
	require.NoError(t, err)
	assert.ErrorContains(t, p.Navigate(ctx, url), "ERR_CONNECTION_REFUSED")
}

// TestProblemsCatchCSPViolations: a page whose Content-Security-Policy
// refuses its inline script and style has those refusals in Problems, so
// tests that check Problems catch them.
func TestProblemsCatchCSPViolations(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		fmt.Fprint(w, `<!doctype html><title>csp</title><p style="color:red">x</p><script>document.title='ran'</script>`)
	}))
	defer srv.Close()
	b := headless.ForTest(t, headless.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := b.NewPage(ctx)
	require.NoError(t, err)
	require.NoError(t, p.Navigate(ctx, srv.URL+"/"))
	var title string
	require.NoError(t, p.Eval(ctx, "document.title", &title))
	assert.Equal(t, "csp", title, "the inline script was refused")
	require.NoError(t, p.WaitFor(ctx, "true"))
	problems := fmt.Sprint(p.Problems())
	assert.Contains(t, problems, "Content Security Policy")
}
