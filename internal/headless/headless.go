// Package headless drives a headless Chromium for tests of web pages (the
// dashboard's), with the Chrome DevTools Protocol over a pipe
// (--remote-debugging-pipe): JSON messages ended by a NUL byte, commands
// on the browser's file descriptor 3, replies and events on its 4. It is a
// few hundred lines instead of a browser-automation dependency in the
// library's go.mod, and it speaks only what the tests need: open a page,
// navigate, evaluate JavaScript, wait for a condition, take a screenshot,
// and collect the page's JavaScript exceptions and console errors.
//
// The browser runs in a process group of its own (on Linux it also dies
// with this process) and Close kills and reaps all of it. Windows is not
// supported (os/exec cannot pass extra file descriptors there): Start
// returns an error wrapping errors.ErrUnsupported.
package headless

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// ErrNotFound is returned by Find and Start when no Chromium is installed.
var ErrNotFound = errors.New("headless: chromium not found (install the Debian package chromium, or set FLOWLINE_CHROMIUM to its path)")

// Find returns the path of the Chromium to run: $FLOWLINE_CHROMIUM when
// set, else the first of chromium, chromium-browser, google-chrome found
// in /usr/bin or on $PATH. It fails with ErrNotFound.
func Find() (string, error) {
	if p := os.Getenv("FLOWLINE_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: FLOWLINE_CHROMIUM=%s: %v", ErrNotFound, p, err)
		}
		return p, nil
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNotFound
}

// Options configure a browser. The zero value finds Chromium with Find
// and opens pages 1280×900.
type Options struct {
	Path          string // the browser's executable; "" means Find's
	Width, Height int    // the pages' viewport; zero means 1280×900
}

// Browser is a running headless Chromium. Its methods are safe for
// concurrent use; Close ends it.
type Browser struct {
	opts   Options
	cmd    *exec.Cmd
	dir    string // the user data directory, removed by Close
	toB    *os.File
	stderr *tail

	mu      sync.Mutex
	nextID  int64
	waiting map[int64]chan reply
	pages   map[string]*Page // by session id, for their events
	readErr error            // why the reader stopped
	writeMu sync.Mutex

	readDone chan struct{}
	waitDone chan struct{}
	waitErr  error
	closeMu  sync.Mutex
	closed   bool
}

type reply struct {
	result json.RawMessage
	err    error
}

// message is any message from the browser.
type message struct {
	ID        int64           `json:"id"`
	Result    json.RawMessage `json:"result"`
	Error     *protoError     `json:"error"`
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	SessionID string          `json:"sessionId"`
}

type protoError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    string `json:"data"`
}

func (e *protoError) Error() string {
	if e.Data != "" {
		return fmt.Sprintf("headless: %s (%d): %s", e.Message, e.Code, e.Data)
	}
	return fmt.Sprintf("headless: %s (%d)", e.Message, e.Code)
}

// Start starts a headless Chromium (--headless --disable-gpu, a new
// temporary user data directory, and --no-sandbox when running as root,
// where Chromium's sandbox refuses to start). ctx bounds the start only.
func Start(ctx context.Context, opts Options) (*Browser, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	if opts.Path == "" {
		p, err := Find()
		if err != nil {
			return nil, err
		}
		opts.Path = p
	}
	if opts.Width <= 0 || opts.Height <= 0 {
		opts.Width, opts.Height = 1280, 900
	}
	dir, err := os.MkdirTemp("", "flowline-chromium-")
	if err != nil {
		return nil, fmt.Errorf("headless: %w", err)
	}
	args := []string{
		"--headless", "--disable-gpu", "--remote-debugging-pipe", "--user-data-dir=" + dir,
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
		"--disable-background-networking", "--disable-component-update", "--disable-default-apps",
		"--mute-audio", "--hide-scrollbars", "--password-store=basic", "--use-mock-keychain",
		fmt.Sprintf("--window-size=%d,%d", opts.Width, opts.Height),
	}
	if os.Geteuid() == 0 {
		args = append(args, "--no-sandbox")
	}
	args = append(args, "about:blank")
	cmdR, cmdW, err := os.Pipe() // commands: we write, the browser reads on fd 3
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("headless: %w", err)
	}
	evR, evW, err := os.Pipe() // replies and events: the browser writes on fd 4
	if err != nil {
		cmdR.Close()
		cmdW.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("headless: %w", err)
	}
	b := &Browser{opts: opts, dir: dir, toB: cmdW, stderr: &tail{max: 16 << 10},
		waiting: map[int64]chan reply{}, pages: map[string]*Page{},
		readDone: make(chan struct{}), waitDone: make(chan struct{})}
	b.cmd = exec.Command(opts.Path, args...)
	b.cmd.ExtraFiles = []*os.File{cmdR, evW}
	b.cmd.Stdout = b.stderr
	b.cmd.Stderr = b.stderr
	b.cmd.SysProcAttr = sysProcAttr()
	b.cmd.WaitDelay = 2 * time.Second // renderers holding its stderr must not hold up Wait
	err = b.cmd.Start()
	cmdR.Close()
	evW.Close()
	if err != nil {
		cmdW.Close()
		evR.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("headless: starting %s: %w", opts.Path, err)
	}
	go func() { // owned by Close, which waits for waitDone
		b.waitErr = b.cmd.Wait()
		close(b.waitDone)
	}()
	go b.read(evR) // owned by Close, which waits for readDone
	// The browser answers once it is up.
	var v struct {
		Product string `json:"product"`
	}
	if err := b.call(ctx, "", "Browser.getVersion", nil, &v); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("headless: %s did not start: %w; its output ends with: %s", opts.Path, err, b.stderr.String())
	}
	return b, nil
}

// Pid returns the browser's process id, which is also its process
// group's id.
func (b *Browser) Pid() int { return b.cmd.Process.Pid }

// read dispatches the browser's messages until the pipe closes.
func (b *Browser) read(r *os.File) {
	defer close(b.readDone)
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<20)
	var err error
	for {
		var line []byte
		line, err = br.ReadBytes(0)
		if err != nil {
			break
		}
		b.dispatch(line[:len(line)-1])
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("headless: the browser closed its pipe (it exited)")
	}
	b.mu.Lock()
	b.readErr = err
	for id, ch := range b.waiting {
		ch <- reply{err: err}
		delete(b.waiting, id)
	}
	b.mu.Unlock()
}

// dispatch hands one message from the browser to whoever waits for it: a
// reply to its caller, an event to its page. A message it cannot read is
// dropped: the browser speaks more than this package understands.
func (b *Browser) dispatch(raw []byte) {
	var m message
	if err := json.Unmarshal(raw, &m); err != nil {
		return
	}
	if m.ID != 0 {
		b.mu.Lock()
		ch := b.waiting[m.ID]
		delete(b.waiting, m.ID)
		b.mu.Unlock()
		if ch != nil {
			rep := reply{result: m.Result}
			if m.Error != nil {
				rep.err = m.Error
			}
			ch <- rep // buffered, and taken out of waiting: never blocks
		}
		return
	}
	b.mu.Lock()
	p := b.pages[m.SessionID]
	b.mu.Unlock()
	if p != nil {
		p.event(m.Method, m.Params)
	}
}

// call sends a command and waits for its reply, decoded into result when
// not nil.
func (b *Browser) call(ctx context.Context, session, method string, params, result any) error {
	ch := make(chan reply, 1)
	b.mu.Lock()
	if b.readErr != nil {
		err := b.readErr
		b.mu.Unlock()
		return err
	}
	b.nextID++
	id := b.nextID
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("headless: %s: %w", method, err)
	}
	b.writeMu.Lock()
	_, err = b.toB.Write(append(data, 0))
	b.writeMu.Unlock()
	if err != nil {
		b.forget(id)
		return fmt.Errorf("headless: %s: writing to the browser: %w", method, err)
	}
	select {
	case rep := <-ch:
		if rep.err != nil {
			return fmt.Errorf("headless: %s: %w", method, rep.err)
		}
		if result != nil && len(rep.result) > 0 {
			if err := json.Unmarshal(rep.result, result); err != nil {
				return fmt.Errorf("headless: %s: decoding its reply: %w", method, err)
			}
		}
		return nil
	case <-ctx.Done():
		b.forget(id)
		return fmt.Errorf("headless: %s: %w", method, ctx.Err())
	}
}

func (b *Browser) forget(id int64) {
	b.mu.Lock()
	delete(b.waiting, id)
	b.mu.Unlock()
}

// Close ends the browser: it asks it to close, kills its process group
// (SIGKILL) if it has not exited within 5 seconds, waits until no process
// of the group is left, and removes its user data directory. It returns
// an error if a process of the browser's group is still there after that.
// Close is idempotent.
func (b *Browser) Close() error {
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = b.call(ctx, "", "Browser.close", nil, nil)
	cancel()
	select {
	case <-b.waitDone:
	case <-time.After(5 * time.Second):
		killGroup(b.Pid())
		<-b.waitDone
	}
	b.toB.Close()
	<-b.readDone
	err := drainGroup(b.Pid())
	if rerr := os.RemoveAll(b.dir); rerr != nil && err == nil {
		err = fmt.Errorf("headless: removing the user data directory: %w", rerr)
	}
	return err
}

// Output returns the end of what the browser wrote to its stdout and
// stderr, for error messages.
func (b *Browser) Output() string { return b.stderr.String() }

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(bytes.ToValidUTF8(t.buf, nil)))
}
