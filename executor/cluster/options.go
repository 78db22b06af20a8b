package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Connection says which NATS to use and how to authenticate to it. The
// same fields serve the submitting side (Options) and workers
// (WorkerOptions).
type Connection struct {
	// URL is a NATS server or cluster to connect to: one URL, or several
	// separated by commas ("nats://n1:4222,nats://n2:4222"); the client
	// learns the rest of a cluster from the server it reaches and
	// reconnects to another when one fails, without limit. A "tls://" URL
	// requires TLS. Empty means Server.
	URL string

	// Server is a server in the same process to connect to without a
	// network (a *natsserver.Server). Used only when URL is empty. One of
	// URL and Server is required. An in-process connection does not
	// outlive its server.
	Server Server

	// User and Password authenticate with a user name and password.
	User, Password string

	// Token authenticates with a token.
	Token string

	// CredsFile is a credentials file (a user JWT and its NKey seed, as
	// written by nsc) for servers that use decentralized JWT auth.
	CredsFile string

	// NKeySeedFile is a file holding an NKey seed, for servers that list
	// users by NKey.
	NKeySeedFile string

	// TLS is the client's TLS configuration: the root CAs that verify the
	// server and, for mutual TLS, the client certificate. Nil means TLS
	// only if the URL or the server requires it, with the system roots.
	TLS *tls.Config

	// Name is the connection's name, shown in the server's monitoring.
	// Empty means "flowline submitter" or "flowline worker <name>".
	Name string

	// NATSOptions are more client options, applied after all the above
	// (for example nats.ReconnectWait). With a URL the client pings its
	// server every 5 seconds and takes it for dead after 2 pings without
	// an answer (nats.PingInterval, nats.MaxPingsOutstanding): a server
	// whose machine vanishes without closing its connections is left
	// within about 15 seconds (a killed server process closes them: the
	// client moves at once).
	NATSOptions []nats.Option

	// StartTimeout bounds how long New and NewWorker wait for the servers
	// and JetStream to be ready: a server that is not up yet (with a URL,
	// the first connection is retried), a cluster still electing its
	// leaders. Default 30s.
	StartTimeout time.Duration
}

func (c *Connection) startTimeout() time.Duration {
	if c.StartTimeout <= 0 {
		return 30 * time.Second
	}
	return c.StartTimeout
}

// Server is a NATS server in the same process, which clients reach
// without a network. *natsserver.Server (package
// executor/cluster/natsserver) is one; this package does not import it,
// so a program that connects to a URL links no server code.
type Server interface {
	// InProcessConn returns a new connection to the server, as
	// nats.InProcessConnProvider.
	InProcessConn() (net.Conn, error)
	// ClientURL returns the URL that other processes connect to, or ""
	// when the server does not listen.
	ClientURL() string
}

// Setup names the JetStream objects that submitters and workers share, and
// the settings those objects get when they are created. Every submitter
// and worker of one deployment must use the same names. Each side creates
// what is missing with these settings; a stream, consumer or bucket that
// already exists is used as it is, whatever its settings (change them with
// the nats command-line tool), except its replicas: one whose number of
// replicas is not Replicas is refused with a *ReplicasError. The zero
// value means every default.
type Setup struct {
	// Prefix starts every subject: calls are published on
	// "<Prefix>.calls", cancellations on "<Prefix>.cancel", workers ask
	// each other who holds a call delivered again on "<Prefix>.holds",
	// and send events to "<Prefix>.events.<submitter id>". Default
	// "flowline".
	Prefix string

	// Stream is the work-queue stream that holds calls until a worker
	// acknowledges them. Default "FLOWLINE_CALLS".
	Stream string

	// Consumer is the durable pull consumer that all workers share.
	// Default "flowline-workers".
	Consumer string

	// Bucket is the key-value bucket that holds results. Default
	// "flowline-results".
	Bucket string

	// Replicas is the number of copies of the stream, the consumer and
	// the bucket in a JetStream cluster: 3 survives the loss of one
	// server. Default 1.
	Replicas int

	// Memory keeps the stream and the bucket in memory instead of files:
	// faster, and lost when the servers holding them stop.
	Memory bool

	// AckWait is how long a worker may hold a call without a sign of life
	// before the call is delivered again, to another worker. Workers
	// heartbeat running calls, so it bounds how soon a dead worker's calls
	// are taken over, not how long a call may run. Default 30s.
	AckWait time.Duration

	// MaxDeliveries is how many times a call is delivered before it fails
	// with an *executor.CrashError. Default 5.
	MaxDeliveries int

	// DedupWindow is how long the stream remembers message ids: a call
	// submitted again with the same run, task and attempt within it is
	// not queued a second time, and a publish the server did not
	// acknowledge is repeated for half of it. The server keeps about 220
	// bytes of memory per id for the window (see docs/cluster.md, Server
	// memory). Default 30 seconds.
	DedupWindow time.Duration

	// ResultTTL is how long a result stays in the bucket while no
	// submitter has taken it: a submitter that dies before its calls end
	// (or a resumed run that collects them, Executor.Collect) finds them
	// there. It must be at least DedupWindow, so that a deduplicated
	// re-submission still finds its result. Default 10 minutes.
	ResultTTL time.Duration

	// TakenTTL is how long a result stays in the bucket once a submitter
	// has taken it (completed a Future with it): the submitter then
	// rewrites the record with a per-message TTL of TakenTTL, so that the
	// server drops it instead of keeping it, and its index entry (about
	// 165 bytes of memory), for ResultTTL. Rewrites are sent in small
	// batches, up to 5 ms after the answer; one that is lost (a
	// connection that fails meanwhile) leaves its record ResultTTL.
	// Until then it answers as before: a re-submission or a Collect of
	// the same attempt gets it, and a delivery of the call again (an
	// acknowledgement lost with a dying server) finds it and is not run.
	// So it must be at least DedupWindow
	// and AckWait, and at least a second (the server's smallest TTL). A
	// TakenTTL of at least ResultTTL keeps taken results for ResultTTL, as
	// untaken ones, and rewrites nothing. Default the longer of
	// DedupWindow and AckWait, plus 15 seconds (45 seconds with the other
	// defaults). Results are rewritten only in a bucket that allows
	// per-message TTLs (NATS 2.11 or later): one this package creates
	// does; an existing one is used as it is (see Setup). A submitter's
	// own verdict (a call it cancelled, or timed out itself) answers its
	// Future before it reaches the bucket, is mostly not taken from there,
	// and then stays ResultTTL.
	TakenTTL time.Duration

	// MaxAckPending bounds the calls delivered and not yet acknowledged,
	// over all workers. Default 10000.
	MaxAckPending int

	// MaxWaiting bounds the pull requests outstanding at once. A worker
	// keeps at most one open request per free slot (usually one for all
	// of them), so at least the sum of all workers' Concurrency is always
	// enough. Default 4096.
	MaxWaiting int
}

var (
	validStream = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	validPrefix = regexp.MustCompile(`^[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*$`)
)

func (s *Setup) setDefaults() error {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&s.Prefix, "flowline")
	def(&s.Stream, "FLOWLINE_CALLS")
	def(&s.Consumer, "flowline-workers")
	def(&s.Bucket, "flowline-results")
	if s.Replicas <= 0 {
		s.Replicas = 1
	}
	if s.AckWait <= 0 {
		s.AckWait = 30 * time.Second
	}
	if s.MaxDeliveries <= 0 {
		s.MaxDeliveries = 5
	}
	if s.DedupWindow <= 0 {
		s.DedupWindow = 30 * time.Second
	}
	if s.ResultTTL <= 0 {
		s.ResultTTL = max(10*time.Minute, s.DedupWindow)
	}
	if s.TakenTTL <= 0 {
		s.TakenTTL = max(s.DedupWindow, s.AckWait) + takenSlack
	}
	if s.MaxAckPending <= 0 {
		s.MaxAckPending = 10000
	}
	if s.MaxWaiting <= 0 {
		s.MaxWaiting = 4096
	}
	switch {
	case !validPrefix.MatchString(s.Prefix):
		return fmt.Errorf("executor/cluster: invalid subject prefix %q", s.Prefix)
	case !validStream.MatchString(s.Stream):
		return fmt.Errorf("executor/cluster: invalid stream name %q", s.Stream)
	case !validStream.MatchString(s.Consumer):
		return fmt.Errorf("executor/cluster: invalid consumer name %q", s.Consumer)
	case !validStream.MatchString(s.Bucket):
		return fmt.Errorf("executor/cluster: invalid bucket name %q", s.Bucket)
	case s.ResultTTL < s.DedupWindow:
		return fmt.Errorf("executor/cluster: ResultTTL %v is shorter than DedupWindow %v", s.ResultTTL, s.DedupWindow)
	case s.TakenTTL < max(s.DedupWindow, s.AckWait, time.Second):
		return fmt.Errorf("executor/cluster: TakenTTL %v is shorter than DedupWindow %v, AckWait %v or a second", s.TakenTTL, s.DedupWindow, s.AckWait)
	}
	return nil
}

// takenSlack is what the default TakenTTL adds to the longer of
// DedupWindow and AckWait: a call whose acknowledgement was lost is
// delivered again AckWait after its last heartbeat, plus a consumer
// leader's election (up to 9 s) and the question to the other workers
// whether one holds it (750 ms), and must still find its result.
const takenSlack = 15 * time.Second

// shortens reports whether results taken by a submitter are rewritten
// with TakenTTL in a bucket whose stream has cfg: it must allow
// per-message TTLs, and keep results longer than TakenTTL.
func (s *Setup) shortens(cfg jetstream.StreamConfig) bool {
	return cfg.AllowMsgTTL && (cfg.MaxAge <= 0 || s.TakenTTL < cfg.MaxAge)
}

func (s *Setup) callSubject() string   { return s.Prefix + ".calls" }
func (s *Setup) cancelSubject() string { return s.Prefix + ".cancel" }
func (s *Setup) holdsSubject() string  { return s.Prefix + ".holds" }
func (s *Setup) eventsSubject(id string) string {
	return s.Prefix + ".events." + id
}
func (s *Setup) advisorySubject() string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + s.Stream + "." + s.Consumer
}

func (s *Setup) storage() jetstream.StorageType {
	if s.Memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// objects are the JetStream objects both sides use.
type objects struct {
	stream   jetstream.Stream
	consumer jetstream.Consumer
	kv       jetstream.KeyValue
}

// ensure creates the stream, the consumer and the bucket if they are
// missing and binds to them. A JetStream cluster that is electing its
// leader does not answer, or answers "unavailable": each step is retried
// until ctx ends.
func (s *Setup) ensure(ctx context.Context, js jetstream.JetStream, logger hclog.Logger) (objects, error) {
	var o objects
	err := retry(ctx, logger, func(ctx context.Context) error {
		var err error
		// An existing stream is used as it is: look before creating, so
		// that one with other settings is found, not refused.
		if o.stream, err = js.Stream(ctx, s.Stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		o.stream, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        s.Stream,
			Description: "flowline calls waiting for a worker",
			Subjects:    []string{s.callSubject()},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     s.storage(),
			Replicas:    s.Replicas,
			Duplicates:  s.DedupWindow,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			logger.Debug("using the existing stream with its own settings", "stream", s.Stream)
			o.stream, err = js.Stream(ctx, s.Stream)
		}
		return err
	})
	if err != nil {
		return o, fmt.Errorf("executor/cluster: stream %s: %w", s.Stream, err)
	}
	if err := s.sameReplicas("stream", s.Stream, o.stream.CachedInfo().Config.Replicas); err != nil {
		return o, err
	}
	err = retry(ctx, logger, func(ctx context.Context) error {
		var err error
		if o.consumer, err = o.stream.Consumer(ctx, s.Consumer); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		o.consumer, err = o.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       s.Consumer,
			Description:   "flowline workers",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       s.AckWait,
			MaxDeliver:    s.MaxDeliveries,
			MaxAckPending: s.MaxAckPending,
			MaxWaiting:    s.MaxWaiting,
			Replicas:      s.Replicas,
		})
		if errors.Is(err, jetstream.ErrConsumerExists) {
			logger.Debug("using the existing consumer with its own settings", "consumer", s.Consumer)
			o.consumer, err = o.stream.Consumer(ctx, s.Consumer)
		}
		return err
	})
	if err != nil {
		return o, fmt.Errorf("executor/cluster: consumer %s: %w", s.Consumer, err)
	}
	// A consumer's 0 replicas means the stream's.
	if r := o.consumer.CachedInfo().Config.Replicas; r != 0 {
		if err := s.sameReplicas("consumer", s.Consumer, r); err != nil {
			return o, err
		}
	}
	err = retry(ctx, logger, func(ctx context.Context) error {
		var err error
		if o.kv, err = js.KeyValue(ctx, s.Bucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
			return err
		}
		o.kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      s.Bucket,
			Description: "flowline results",
			History:     1,
			TTL:         s.ResultTTL,
			Storage:     s.storage(),
			Replicas:    s.Replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			logger.Debug("using the existing bucket with its own settings", "bucket", s.Bucket)
			o.kv, err = js.KeyValue(ctx, s.Bucket)
			return err
		}
		if err == nil {
			allowTTL(ctx, js, s.Bucket, logger)
		}
		return err
	})
	if err != nil {
		return o, fmt.Errorf("executor/cluster: bucket %s: %w", s.Bucket, err)
	}
	var st jetstream.KeyValueStatus
	err = retry(ctx, logger, func(ctx context.Context) error {
		var err error
		st, err = o.kv.Status(ctx)
		return err
	})
	if err != nil {
		return o, fmt.Errorf("executor/cluster: bucket %s: %w", s.Bucket, err)
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok && bs.StreamInfo() != nil {
		if err := s.sameReplicas("bucket", s.Bucket, bs.StreamInfo().Config.Replicas); err != nil {
			return o, err
		}
	}
	return o, nil
}

// allowTTL lets the stream of a bucket just created take per-message
// TTLs, which TakenTTL needs: the key-value API turns them on only with
// limit markers, which would send every watcher an event per expired
// result. A server that cannot (before NATS 2.11) ignores the setting or
// refuses it; either way results then stay ResultTTL.
func allowTTL(ctx context.Context, js jetstream.JetStream, bucket string, logger hclog.Logger) {
	st, err := js.Stream(ctx, "KV_"+bucket)
	if err == nil {
		cfg := st.CachedInfo().Config
		if cfg.AllowMsgTTL {
			return
		}
		cfg.AllowMsgTTL = true
		_, err = js.UpdateStream(ctx, cfg)
	}
	if err != nil {
		logger.Info("the result bucket does not take per-message TTLs: taken results stay ResultTTL", "bucket", bucket, "error", err)
	}
}

// ReplicasError refuses an existing stream, consumer or bucket whose
// number of replicas is not Setup.Replicas: submitters and workers must
// be set alike, and a deployment that believes it survives the loss of a
// server must not run on single copies.
type ReplicasError struct {
	Kind, Name string // "stream", "consumer" or "bucket", and its name
	Has, Want  int    // its replicas, and Setup.Replicas
}

func (e *ReplicasError) Error() string {
	return fmt.Sprintf("executor/cluster: %s %s has %d replicas but Setup.Replicas is %d: set Replicas alike on every submitter and worker (or change the %s with the nats tool)",
		e.Kind, e.Name, e.Has, e.Want, e.Kind)
}

func (s *Setup) sameReplicas(kind, name string, has int) error {
	if has != s.Replicas {
		return &ReplicasError{Kind: kind, Name: name, Has: has, Want: s.Replicas}
	}
	return nil
}

// transient reports whether a JetStream request may succeed if repeated:
// it was not answered (a leader election, a reconnect), or the service
// said it is unavailable for now.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrReconnectBufExceeded)
}

// retry calls fn, with 5 seconds for each try, until it succeeds, fails
// for good, or ctx ends.
func retry(ctx context.Context, logger hclog.Logger, fn func(context.Context) error) error {
	backoff := 100 * time.Millisecond
	for {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(tctx)
		cancel()
		if err == nil || !transient(err) || ctx.Err() != nil {
			return err
		}
		logger.Debug("JetStream not ready; trying again", "in", backoff, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// pingInterval and maxPingsOut are the client's pings: a server that
// answers none of maxPingsOut pings in a row is taken for dead and the
// client reconnects to another. NATSOptions may change them.
const (
	pingInterval = 5 * time.Second
	maxPingsOut  = 2
)

// conn is a NATS connection and what tells when it has closed.
type conn struct {
	nc     *nats.Conn
	closed chan struct{}
	// reconnected gets a token each time the client reconnects (size 1):
	// a worker then tells the consumer at once that the calls it holds
	// are still in progress.
	reconnected chan struct{}
	// lost is when the connection was last lost (UnixNano), 0 if never.
	lost atomic.Int64
}

// connect opens a connection to c's server. It fails when neither a URL
// nor a server is given.
func (c *Connection) connect(name string, logger hclog.Logger) (*conn, error) {
	if c.Name != "" {
		name = c.Name
	}
	cc := &conn{closed: make(chan struct{}), reconnected: make(chan struct{}, 1)}
	opts := []nats.Option{
		nats.Name(name),
		nats.ClosedHandler(func(*nats.Conn) { close(cc.closed) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			cc.lost.Store(time.Now().UnixNano())
			if err != nil {
				logger.Warn("disconnected from NATS", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
			select {
			case cc.reconnected <- struct{}{}:
			default:
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			logger.Warn("NATS client error", "subject", subject, "error", err)
		}),
	}
	url := c.URL
	switch {
	case url != "":
		opts = append(opts, nats.MaxReconnects(-1),
			// A killed server resets its connections and the client moves
			// at once; a machine that vanishes is noticed by pings only:
			// within pingInterval × (maxPingsOut+1), not nats.go's default
			// 2 minutes × 3.
			nats.PingInterval(pingInterval), nats.MaxPingsOutstanding(maxPingsOut))
	case c.Server != nil:
		opts = append(opts, nats.InProcessServer(c.Server), nats.NoReconnect())
	default:
		return nil, errors.New("executor/cluster: no NATS URL and no in-process Server to connect to (natsserver.Start starts one)")
	}
	if c.User != "" || c.Password != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("executor/cluster: nkey seed: %w", err)
		}
		opts = append(opts, o)
	}
	if c.TLS != nil {
		opts = append(opts, nats.Secure(c.TLS))
	}
	opts = append(opts, c.NATSOptions...)
	// No server up yet (a cluster starting with its clients) is waited
	// for, up to StartTimeout; any other refusal (authentication, TLS) is
	// final.
	deadline := time.Now().Add(c.startTimeout())
	nc, err := nats.Connect(url, opts...)
	for wait := 100 * time.Millisecond; errors.Is(err, nats.ErrNoServers) && time.Now().Add(wait).Before(deadline); wait = min(2*wait, time.Second) {
		logger.Debug("no NATS server reachable yet; trying again", "in", wait)
		time.Sleep(wait)
		nc, err = nats.Connect(url, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("executor/cluster: connect to NATS: %w", err)
	}
	cc.nc = nc
	return cc, nil
}

// close drains the connection (subscriptions finish their pending
// messages, publishes are flushed) and waits until it is closed, closing
// it outright if ctx ends first.
func (c *conn) close(ctx context.Context) {
	if err := c.nc.Drain(); err != nil {
		c.nc.Close()
	}
	select {
	case <-c.closed:
	case <-ctx.Done():
		c.nc.Close()
		<-c.closed
	}
}
