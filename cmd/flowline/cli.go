package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/flowline-go/flowline/store"
	"github.com/flowline-go/flowline/store/postgres"
	"github.com/flowline-go/flowline/store/sqlite"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usage = `usage: flowline -store <sqlite file | postgres URL> [-json] [-timeout DUR] <command>

commands:
  runs list [-flow F] [-state S[,S...]] [-since DUR] [-limit N]
  runs show ID
  runs retry ID
  runs cancel ID
  cache list [PREFIX]
  cache invalidate PREFIX

-store defaults to $FLOWLINE_STORE. See 'go doc github.com/flowline-go/flowline/cmd/flowline'.
`

// usageError is a command line that is not understood: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// cli is one invocation.
type cli struct {
	st     store.Store
	json   bool
	stdout io.Writer
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	err := runErr(ctx, args, getenv, stdout)
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "flowline: %s\n\n%s", ue.msg, usage)
		return exitUsage
	}
	fmt.Fprintf(stderr, "flowline: %v\n", err)
	return exitError
}

func runErr(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("flowline", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	where := fs.String("store", getenv("FLOWLINE_STORE"), "the store: a SQLite file or a postgres:// URL")
	jsonOut := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) < 2 {
		if len(rest) == 1 && rest[0] == "help" {
			return flag.ErrHelp
		}
		return usagef("expected a command (runs list|show|retry|cancel, cache list|invalidate)")
	}
	cmd, ok := commands[rest[0]+" "+rest[1]]
	if !ok {
		return usagef("unknown command %q", rest[0]+" "+rest[1])
	}
	c := &cli{json: *jsonOut, stdout: stdout}
	sub := flag.NewFlagSet(rest[0]+" "+rest[1], flag.ContinueOnError)
	sub.SetOutput(io.Discard)
	sub.BoolVar(&c.json, "json", *jsonOut, "print JSON")
	exec := cmd(sub)
	if err := parse(sub, rest[2:]); err != nil {
		return err
	}
	if *where == "" {
		return usagef("no store: give -store or set FLOWLINE_STORE")
	}
	if *timeout <= 0 {
		return usagef("-timeout must be positive, not %v", *timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	st, err := open(ctx, *where, *timeout)
	if err != nil {
		return err
	}
	defer st.Close()
	c.st = st
	return exec(ctx, c, sub.Args())
}

// parse parses args into fs, turning its errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usagef("%s: %v", fs.Name(), err)
}

// open opens the store at where: a Postgres database for a postgres://
// URL, else an existing SQLite file.
func open(ctx context.Context, where string, timeout time.Duration) (store.Store, error) {
	if strings.HasPrefix(where, "postgres://") || strings.HasPrefix(where, "postgresql://") {
		if _, err := pgconn.ParseConfig(where); err != nil {
			return nil, fmt.Errorf("bad Postgres URL: %v", redact(err))
		}
		st, err := postgres.Open(ctx, where, postgres.Options{RetryFor: min(timeout, 5*time.Second), MaxConns: 2})
		if err != nil {
			return nil, fmt.Errorf("opening the Postgres store: %w", err)
		}
		return st, nil
	}
	fi, err := os.Stat(where)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("no store at %s: the file does not exist (give a SQLite file that a flow wrote, or a postgres:// URL)", where)
	case err != nil:
		return nil, err
	case fi.IsDir():
		return nil, fmt.Errorf("no store at %s: it is a directory, not a SQLite file", where)
	}
	st, err := sqlite.Open(ctx, where, sqlite.Options{BusyTimeout: min(timeout, 10*time.Second)})
	if err != nil {
		return nil, fmt.Errorf("opening the SQLite store %s: %w", where, err)
	}
	return st, nil
}

// redact keeps a password that pgconn quotes in its error out of ours.
func redact(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		if at := strings.IndexByte(msg[i:], '@'); at >= 0 {
			if colon := strings.IndexByte(msg[i+3:i+at], ':'); colon >= 0 {
				msg = msg[:i+3+colon+1] + "xxxxx" + msg[i+at:]
			}
		}
	}
	return msg
}

// command declares its flags on fs and returns what runs it.
type command func(fs *flag.FlagSet) func(ctx context.Context, c *cli, args []string) error

var commands = map[string]command{
	"runs list":        runsList,
	"runs show":        runsShow,
	"runs retry":       runsRetry,
	"runs cancel":      runsCancel,
	"cache list":       cacheList,
	"cache invalidate": cacheInvalidate,
}

func oneArg(name string, args []string) (string, error) {
	if len(args) != 1 {
		return "", usagef("%s takes one argument, the run id (got %d)", name, len(args))
	}
	if args[0] == "" {
		return "", usagef("%s: the run id is empty", name)
	}
	return args[0], nil
}

func runsList(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	flowName := fs.String("flow", "", "only runs of this flow")
	states := fs.String("state", "", "only runs in these states (comma-separated)")
	since := fs.String("since", "", "only runs created within this long (e.g. 90m, 24h, 7d)")
	limit := fs.Int("limit", 50, "at most this many runs (0: all)")
	return func(ctx context.Context, c *cli, args []string) error {
		if len(args) > 0 {
			return usagef("runs list takes no arguments (got %q)", args)
		}
		f := store.RunFilter{Flow: *flowName, Newest: true, Limit: *limit}
		if *limit < 0 {
			return usagef("-limit must not be negative")
		}
		if *states != "" {
			for _, s := range strings.Split(*states, ",") {
				if s = strings.TrimSpace(s); s != "" {
					f.States = append(f.States, canonicalState(s))
				}
			}
		}
		if *since != "" {
			d, err := parseSince(*since)
			if err != nil {
				return usagef("-since: %v", err)
			}
			f.Since = time.Now().Add(-d)
		}
		runs, err := c.st.Runs(ctx, f)
		if err != nil {
			return err
		}
		return c.printRuns(runs)
	}
}

// parseSince parses a duration, with d for days besides Go's units.
func parseSince(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (90m, 24h, 7d)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// canonicalState spells a state as the store records it, whatever its
// case: "failed" is "Failed".
func canonicalState(s string) string {
	for _, st := range []string{"Running", "Success", "Failed", "TimedOut", "Cancelled", "Skipped", "Cached",
		"TriggerFailed", "Pending", "Retrying"} {
		if strings.EqualFold(s, st) {
			return st
		}
	}
	return s
}

func runsShow(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	return func(ctx context.Context, c *cli, args []string) error {
		id, err := oneArg("runs show", args)
		if err != nil {
			return err
		}
		r, err := c.st.Run(ctx, id)
		if err != nil {
			return unknownRun(id, err)
		}
		trs, err := c.st.TaskRuns(ctx, id)
		if err != nil {
			return err
		}
		as, err := c.st.Attempts(ctx, id)
		if err != nil {
			return err
		}
		return c.printRun(r, trs, as)
	}
}

func unknownRun(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no run %q in the store", id)
	}
	return err
}

func runsRetry(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	return func(ctx context.Context, c *cli, args []string) error {
		id, err := oneArg("runs retry", args)
		if err != nil {
			return err
		}
		if err := c.st.RequestRetry(ctx, id); err != nil {
			return refused(id, err)
		}
		r, err := c.st.Run(ctx, id)
		if err != nil {
			return unknownRun(id, err)
		}
		return c.printRequest(r, store.RequestRetryKind, r.RetryRequested,
			fmt.Sprintf("retry requested for run %s (flow %q, %s).\nA process running flow.Serve with flow %q performs it: it re-runs the run's failed, cancelled and never-run tasks.\n",
				r.ID, r.Flow, r.State, r.Flow))
	}
}

func runsCancel(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	return func(ctx context.Context, c *cli, args []string) error {
		id, err := oneArg("runs cancel", args)
		if err != nil {
			return err
		}
		if err := c.st.RequestCancel(ctx, id); err != nil {
			return refused(id, err)
		}
		r, err := c.st.Run(ctx, id)
		if err != nil {
			return unknownRun(id, err)
		}
		msg := fmt.Sprintf("cancel requested for run %s (flow %q).\nIts driver stops it within its poll interval (about a second); the run then ends Cancelled.\n", r.ID, r.Flow)
		if !driven(r) {
			msg += "No process drives it now: it is cancelled when one resumes it.\n"
		}
		return c.printRequest(r, store.RequestCancelKind, r.CancelRequested, msg)
	}
}

// refused words a request the store refused.
func refused(id string, err error) error {
	var re *store.RequestError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no run %q in the store", id)
	case errors.As(err, &re) && errors.Is(err, store.ErrFinished):
		return fmt.Errorf("cannot cancel run %s: it has already ended (%s)", id, re.State)
	case errors.As(err, &re) && re.State == "Running":
		return fmt.Errorf("cannot retry run %s: it has not ended (cancel it first, or wait for it)", id)
	case errors.As(err, &re):
		return fmt.Errorf("cannot retry run %s: it ended %s; only a failed, timed-out or cancelled run can be retried", id, re.State)
	}
	return err
}

func cacheList(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	return func(ctx context.Context, c *cli, args []string) error {
		if len(args) > 1 {
			return usagef("cache list takes at most one argument, a key prefix (got %d)", len(args))
		}
		prefix := ""
		if len(args) == 1 {
			prefix = args[0]
		}
		es, err := c.st.CacheEntries(ctx, prefix)
		if err != nil {
			return err
		}
		return c.printCache(es)
	}
}

func cacheInvalidate(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	return func(ctx context.Context, c *cli, args []string) error {
		if len(args) != 1 {
			return usagef("cache invalidate takes one argument, a key prefix ('' for every entry)")
		}
		n, err := c.st.Invalidate(ctx, args[0])
		if err != nil {
			return err
		}
		return c.printInvalidated(args[0], n)
	}
}
