package headless

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
)

// Page is a browser tab, attached to its own session.
type Page struct {
	b       *Browser
	session string
	target  string

	mu       sync.Mutex
	problems []string // exceptions and console errors, in order
}

// NewPage opens a tab on about:blank with the browser's viewport, and
// starts collecting its JavaScript exceptions and console errors.
func (b *Browser) NewPage(ctx context.Context) (*Page, error) {
	var t struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &t); err != nil {
		return nil, err
	}
	var s struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": t.TargetID, "flatten": true}, &s); err != nil {
		return nil, err
	}
	p := &Page{b: b, session: s.SessionID, target: t.TargetID}
	b.mu.Lock()
	b.pages[p.session] = p
	b.mu.Unlock()
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		if err := p.call(ctx, m, nil, nil); err != nil {
			return nil, err
		}
	}
	if err := p.SetViewport(ctx, b.opts.Width, b.opts.Height); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Page) call(ctx context.Context, method string, params, result any) error {
	return p.b.call(ctx, p.session, method, params, result)
}

// event records what the tests check: exceptions and console errors.
func (p *Page) event(method string, params json.RawMessage) {
	var text string
	switch method {
	case "Runtime.exceptionThrown":
		var e struct {
			ExceptionDetails struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		_ = json.Unmarshal(params, &e)
		text = "exception: " + e.ExceptionDetails.Text + " " + e.ExceptionDetails.Exception.Description
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		_ = json.Unmarshal(params, &e)
		if e.Type != "error" {
			return
		}
		var parts []string
		for _, a := range e.Args {
			parts = append(parts, fmt.Sprint(a.Value, a.Description))
		}
		text = "console.error: " + strings.Join(parts, " ")
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Level  string `json:"level"`
				Text   string `json:"text"`
				URL    string `json:"url"`
				Source string `json:"source"`
			} `json:"entry"`
		}
		_ = json.Unmarshal(params, &e)
		if e.Entry.Level != "error" {
			return
		}
		text = "log (" + e.Entry.Source + "): " + e.Entry.Text + " " + e.Entry.URL
	default:
		return
	}
	p.mu.Lock()
	p.problems = append(p.problems, text)
	p.mu.Unlock()
}

// Problems returns the JavaScript exceptions, console errors and browser
// log errors (a refused resource, a Content-Security-Policy violation)
// the page has had so far.
func (p *Page) Problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.problems...)
}

// SetViewport sets the page's viewport, in CSS pixels.
func (p *Page) SetViewport(ctx context.Context, width, height int) error {
	return p.call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil)
}

// Navigate loads url and waits until the new document has loaded (the
// document a redirect or the page's own script took it to, if any). A page
// that failed to load (no server, a refused connection) is an error; an
// HTTP error status is not (the page shows it).
func (p *Page) Navigate(ctx context.Context, url string) error {
	// A mark on the old document tells it from the new one, wherever the
	// new one ends up (a redirect, a form a script submits at once).
	if err := p.Eval(ctx, "window.__headlessOld = true", nil); err != nil {
		return err
	}
	var r struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.call(ctx, "Page.navigate", map[string]any{"url": url}, &r); err != nil {
		return err
	}
	if r.ErrorText != "" {
		return fmt.Errorf("headless: navigating to %s: %s", url, r.ErrorText)
	}
	return p.WaitFor(ctx, "!window.__headlessOld && document.readyState === 'complete'")
}

// Eval evaluates a JavaScript expression in the page, awaiting it if it
// is a promise, and decodes its value (as JSON) into out unless out is
// nil. An exception is an error with its text.
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := p.call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r); err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		return fmt.Errorf("headless: evaluating %q: %s %s", expr, e.Text, e.Exception.Description)
	}
	if out == nil || len(r.Result.Value) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Result.Value, out); err != nil {
		return fmt.Errorf("headless: evaluating %q: decoding %s: %w", expr, r.Result.Value, err)
	}
	return nil
}

// WaitFor evaluates expr every 25 ms until it is truthy, and fails when
// ctx ends first, with the last evaluation's error if there was one.
func (p *Page) WaitFor(ctx context.Context, expr string) error {
	var last error
	for {
		var ok bool
		err := p.Eval(ctx, "!!("+expr+")", &ok)
		if err == nil && ok {
			return nil
		}
		if err != nil {
			last = err
		}
		t := time.NewTimer(25 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			if last != nil && !errors.Is(last, context.Canceled) && !errors.Is(last, context.DeadlineExceeded) {
				return fmt.Errorf("headless: waiting for %s: %w (last: %v)", expr, ctx.Err(), last)
			}
			return fmt.Errorf("headless: waiting for %s: %w", expr, ctx.Err())
		case <-t.C:
		}
	}
}

// Screenshot returns a PNG of the whole page, not only the viewport.
func (p *Page) Screenshot(ctx context.Context) ([]byte, error) {
	var m struct {
		CSSContentSize struct {
			Width, Height float64
		} `json:"cssContentSize"`
	}
	if err := p.call(ctx, "Page.getLayoutMetrics", nil, &m); err != nil {
		return nil, err
	}
	w := math.Ceil(max(m.CSSContentSize.Width, float64(p.b.opts.Width)))
	h := math.Ceil(m.CSSContentSize.Height)
	var r struct {
		Data string `json:"data"`
	}
	if err := p.call(ctx, "Page.captureScreenshot", map[string]any{
		"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": w, "height": h, "scale": 1},
	}, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

// Close closes the tab.
func (p *Page) Close(ctx context.Context) error {
	p.b.mu.Lock()
	delete(p.b.pages, p.session)
	p.b.mu.Unlock()
	return p.b.call(ctx, "", "Target.closeTarget", map[string]any{"targetId": p.target}, nil)
}
