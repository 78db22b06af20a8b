// Package natsserver starts an embedded NATS server with JetStream, in the
// process, for the cluster executor: tests, examples, demonstrations of
// failover, and programs that want a queue without installing anything.
// It is a package of its own so that a program that only submits to, or
// serves for, an external NATS server or cluster links no server code:
// such a program imports executor/cluster alone. Production clusters are
// real NATS servers.
//
// A *Server is a cluster.Server: give it to cluster.Connection.Server for
// in-process clients, or give ClientURL to other processes.
package natsserver

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
)

// Options configure an embedded NATS server. The zero value is a single
// server with JetStream, a temporary store and no network port: only
// clients in the same process can reach it (cluster.Executor and
// cluster.Worker do, through cluster.Connection.Server).
type Options struct {
	// Name is the server's name, which JetStream clustering requires to be
	// unique among the servers of a cluster. Empty means a generated one.
	Name string

	// Listen is the host:port clients connect to, for example
	// "127.0.0.1:0" (a free port on loopback) so that worker processes can
	// connect to ClientURL. Empty means no port at all. The embedded server
	// has no authentication: listen on loopback only, and run a real NATS
	// server for anything that must be secured.
	Listen string

	// StoreDir is where JetStream keeps its files. Empty means a new
	// temporary directory, removed by Shutdown; a directory given here is
	// kept.
	StoreDir string

	// Cluster joins the server to a JetStream cluster of embedded servers
	// (for tests and demonstrations of failover; production clusters are
	// real NATS servers). Nil means a standalone server.
	Cluster *Cluster

	// Logger receives the server's messages, named "nats-server": errors
	// and warnings at their levels, notices at Debug, and the server's own
	// debug lines at Trace (only when the logger is at Trace). The server's
	// per-message tracing is never enabled. Nil means no logging.
	Logger hclog.Logger

	// StartTimeout bounds how long Start waits for the server to be
	// ready. Zero means 10 seconds.
	StartTimeout time.Duration
}

// Cluster joins an embedded server to a cluster.
type Cluster struct {
	// Name is the cluster's name, the same on every server. Required.
	Name string
	// Listen is the host:port this server accepts route connections on.
	// Required, and a fixed port, since the other servers' Routes name it.
	Listen string
	// Routes are the route URLs ("nats://127.0.0.1:6222") of the other
	// servers of the cluster.
	Routes []string
}

// Server is an embedded NATS server with JetStream, started by Start. It
// is safe for concurrent use.
type Server struct {
	srv     *server.Server
	tempDir string // removed by Shutdown; empty if the store was given

	once sync.Once
}

// Start starts an embedded server and waits until it accepts
// connections. It fails if a port cannot be bound, the store cannot be
// created, or the server is not ready within StartTimeout.
func Start(opts Options) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 10 * time.Second
	}
	s := &Server{}
	sopts := &server.Options{
		ServerName: opts.Name,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoSigs:     true,
		DontListen: opts.Listen == "",
	}
	if opts.Listen != "" {
		host, port, err := splitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("executor/cluster/natsserver: server listen address: %w", err)
		}
		sopts.Host, sopts.Port = host, port
	}
	if c := opts.Cluster; c != nil {
		if c.Name == "" || c.Listen == "" {
			return nil, errors.New("executor/cluster/natsserver: a server cluster needs a name and a listen address")
		}
		host, port, err := splitHostPort(c.Listen)
		if err != nil {
			return nil, fmt.Errorf("executor/cluster/natsserver: cluster listen address: %w", err)
		}
		sopts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port}
		for _, r := range c.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("executor/cluster/natsserver: route %q: %w", r, err)
			}
			sopts.Routes = append(sopts.Routes, u)
		}
	}
	if sopts.StoreDir == "" {
		dir, err := os.MkdirTemp("", "flowline-nats-")
		if err != nil {
			return nil, fmt.Errorf("executor/cluster/natsserver: server store: %w", err)
		}
		s.tempDir, sopts.StoreDir = dir, dir
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		s.removeTemp()
		return nil, fmt.Errorf("executor/cluster/natsserver: start server: %w", err)
	}
	srv.SetLoggerV2(&serverLogger{l: logger.Named("nats-server")}, logger.IsTrace(), false, false)
	s.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(opts.StartTimeout) {
		s.Shutdown()
		return nil, fmt.Errorf("executor/cluster/natsserver: server not ready after %v", opts.StartTimeout)
	}
	return s, nil
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	if port == 0 {
		port = -1 // the server's spelling of "any free port"
	}
	return host, port, nil
}

// InProcessConn returns a connection to the server that needs no network,
// for nats.InProcessServer: what makes a Server a cluster.Server.
func (s *Server) InProcessConn() (net.Conn, error) { return s.srv.InProcessConn() }

// Name returns the server's name.
func (s *Server) Name() string { return s.srv.Name() }

// ClientURL returns the URL clients in other processes connect to, or ""
// when the server does not listen.
func (s *Server) ClientURL() string {
	if s.srv.Addr() == nil {
		return ""
	}
	return s.srv.ClientURL()
}

// Running reports whether the server is running (it stops at Shutdown).
func (s *Server) Running() bool { return s.srv.Running() }

// Shutdown stops the server, waits until it has stopped, and removes its
// temporary store. Clients connected to it lose their connection. It may
// be called more than once.
func (s *Server) Shutdown() {
	s.once.Do(func() {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.removeTemp()
	})
}

func (s *Server) removeTemp() {
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
	}
}

// serverLogger bridges nats-server's printf logger to hclog: one constant
// message per level, the server's text under "text".
type serverLogger struct{ l hclog.Logger }

func (b *serverLogger) Noticef(format string, v ...any) {
	if b.l.IsDebug() {
		b.l.Debug("server notice", "text", fmt.Sprintf(format, v...))
	}
}

func (b *serverLogger) Warnf(format string, v ...any) {
	b.l.Warn("server warning", "text", fmt.Sprintf(format, v...))
}

func (b *serverLogger) Fatalf(format string, v ...any) {
	b.l.Error("server fatal error", "text", fmt.Sprintf(format, v...))
}

func (b *serverLogger) Errorf(format string, v ...any) {
	b.l.Error("server error", "text", fmt.Sprintf(format, v...))
}

func (b *serverLogger) Debugf(format string, v ...any) {
	if b.l.IsTrace() {
		b.l.Trace("server debug", "text", fmt.Sprintf(format, v...))
	}
}

func (b *serverLogger) Tracef(format string, v ...any) {
	if b.l.IsTrace() {
		b.l.Trace("server trace", "text", fmt.Sprintf(format, v...))
	}
}
