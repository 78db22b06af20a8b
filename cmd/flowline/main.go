// Command flowline looks at and steers the runs recorded in a flowline run
// store (store/sqlite or store/postgres) from a shell: list and show runs,
// ask for a run to be cancelled or retried, list and invalidate cache
// entries. Use it where the dashboard is not mounted, in scripts (-json),
// or to look at a store file copied off a machine.
//
// Usage:
//
//	flowline -store <sqlite file | postgres URL> [-json] [-timeout DUR] <command>
//
//	runs list [-flow F] [-state S[,S...]] [-since DUR] [-limit N]
//	                   runs, newest first (default limit 50); -since 24h
//	                   or 7d keeps runs created within that time
//	runs show ID       a run, its task table (state, attempts, duration,
//	                   error) and every attempt (worker, duration, error)
//	runs retry ID      records a retry request; a process running
//	                   flow.Serve with the run's flow performs it
//	runs cancel ID     records a cancel request; the run's driver stops
//	                   it within its poll interval (about a second)
//	cache list [PREFIX]        unexpired cache entries
//	cache invalidate PREFIX    deletes the entries whose key starts with
//	                           PREFIX ('' deletes every entry)
//
// -store defaults to $FLOWLINE_STORE. A value starting with postgres:// or
// postgresql:// is a PostgreSQL database; anything else is the path of a
// SQLite file, which must exist (flowline never creates a store).
//
// Output is plain text in aligned columns, or JSON with -json (an array for
// the lists, an object otherwise), on stdout; errors go to stderr. Times
// are shown in the local time zone. Exit status: 0 on success, 1 on an
// error (no such store, unknown run, a request the run's state refuses, a
// bad URL, an unreachable server), 2 on a usage error.
//
// The requests only record what is asked: retry and cancel are carried out
// by the processes that drive runs (see docs/durability.md), so the command
// returns at once.
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
