//go:build linux && !race

package crashtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// groups are the JetStream groups a run depends on, by what they are:
// the calls stream, its consumer, the results bucket's stream, the
// submitter's result watcher (an R1 consumer on the bucket), and the
// JetStream meta leader (which answers account info and creates
// consumers, such as a re-created watcher).
var groupNames = []string{"calls", "consumer", "bucket", "watcher", "meta"}

// leaders names the server leading each group now ("" when it has none
// or cannot be asked); meta is "up" when JetStream's meta leader answers.
func (o *observer) leaders(r *run) map[string]string {
	return o.leadersWithin(r, 300*time.Millisecond)
}

// leadersWithin is leaders, each question answered within d.
func (o *observer) leadersWithin(r *run, d time.Duration) map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	got := make(map[string]string, len(groupNames))
	var mu sync.Mutex
	var wg sync.WaitGroup
	set := func(k, v string) {
		mu.Lock()
		got[k] = v
		mu.Unlock()
	}
	wg.Go(func() {
		if s, err := o.js.Stream(ctx, r.setup.Stream); err == nil {
			if info := s.CachedInfo(); info.Cluster != nil {
				set("calls", info.Cluster.Leader)
			}
		}
	})
	wg.Go(func() {
		if c, err := o.js.Consumer(ctx, r.setup.Stream, r.setup.Consumer); err == nil {
			if info := c.CachedInfo(); info.Cluster != nil {
				set("consumer", info.Cluster.Leader)
			}
		}
	})
	wg.Go(func() {
		if s, err := o.js.Stream(ctx, "KV_"+r.setup.Bucket); err == nil {
			if info := s.CachedInfo(); info.Cluster != nil {
				set("bucket", info.Cluster.Leader)
			}
		}
	})
	wg.Go(func() {
		if name, err := o.watcherServerCtx(ctx, r.setup.Bucket); err == nil {
			set("watcher", name)
		}
	})
	wg.Go(func() {
		if _, err := o.js.AccountInfo(ctx); err == nil {
			set("meta", "up")
		}
	})
	wg.Wait()
	return got
}

// recovery follows the groups after a kill of server dead at kill: it
// reports, per group the dead server led, how long the group went
// without a leader (as seen by the observer, every 50ms, for up to 20s).
type recovery struct {
	dead   string
	mu     sync.Mutex
	before map[string]string
	back   map[string]time.Duration
	done   chan struct{}
}

// follow starts following; before is leaders() just before the kill.
func (o *observer) follow(r *run, dead string, kill time.Time, before map[string]string) *recovery {
	rc := &recovery{dead: dead, before: before, back: make(map[string]time.Duration), done: make(chan struct{})}
	var wait []string
	for _, g := range groupNames {
		if before[g] == dead || g == "meta" {
			wait = append(wait, g)
		}
	}
	go func() {
		defer close(rc.done)
		for time.Since(kill) < 20*time.Second && len(wait) > 0 {
			// Short questions first, to see a new leader soon; after 10s,
			// longer ones, so that a loaded server's answer is not missed.
			d := 300 * time.Millisecond
			if time.Since(kill) > 10*time.Second {
				d = 2 * time.Second
			}
			now := o.leadersWithin(r, d)
			for i := 0; i < len(wait); i++ {
				g := wait[i]
				if v := now[g]; v != "" && v != dead {
					rc.mu.Lock()
					rc.back[g] = time.Since(kill)
					rc.mu.Unlock()
					wait = append(wait[:i], wait[i+1:]...)
					i--
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return rc
}

// String says what the dead server led and when each group had a
// leader again.
func (rc *recovery) String() string {
	<-rc.done
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var parts []string
	for _, g := range groupNames {
		if d, ok := rc.back[g]; ok {
			parts = append(parts, fmt.Sprintf("%s %v", g, d.Round(10*time.Millisecond)))
		}
	}
	sort.Strings(parts)
	var led []string
	for _, g := range groupNames {
		led = append(led, g+"="+rc.before[g])
	}
	return fmt.Sprintf("leaders before [%s]; led again after: %s", strings.Join(led, " "), strings.Join(parts, ", "))
}

// healthy reports whether the calls stream, its consumer and the bucket
// each have a leader with every replica current: a kill from that state
// is one server's death, not a second failure on top of one not yet
// recovered from.
func (o *observer) healthy(r *run) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	current := func(ci *jetstream.ClusterInfo) bool {
		if ci == nil || ci.Leader == "" {
			return false
		}
		for _, p := range ci.Replicas {
			if !p.Current || p.Offline {
				return false
			}
		}
		return len(ci.Replicas) == r.setup.Replicas-1
	}
	for _, name := range []string{r.setup.Stream, "KV_" + r.setup.Bucket} {
		s, err := o.js.Stream(ctx, name)
		if err != nil || !current(s.CachedInfo().Cluster) {
			return false
		}
	}
	c, err := o.js.Consumer(ctx, r.setup.Stream, r.setup.Consumer)
	return err == nil && current(c.CachedInfo().Cluster)
}

// waitHealthy waits until healthy, for up to a minute.
func (o *observer) waitHealthy(r *run) error {
	deadline := time.Now().Add(time.Minute)
	for !o.healthy(r) {
		if time.Now().After(deadline) {
			return errors.New("the stream, consumer and bucket are not all led and current a minute on")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// moveLeaders has every group that server leads lead elsewhere (a leader
// stepdown that prefers another server), so that the server leads none.
func (o *observer) moveLeaders(r *run, server string, others []string) error {
	for try := 0; try < 20; try++ {
		now := o.leaders(r)
		var subjects []string
		if now["calls"] == server {
			subjects = append(subjects, "$JS.API.STREAM.LEADER.STEPDOWN."+r.setup.Stream)
		}
		if now["consumer"] == server {
			subjects = append(subjects, "$JS.API.CONSUMER.LEADER.STEPDOWN."+r.setup.Stream+"."+r.setup.Consumer)
		}
		if now["bucket"] == server {
			subjects = append(subjects, "$JS.API.STREAM.LEADER.STEPDOWN.KV_"+r.setup.Bucket)
		}
		if len(subjects) == 0 && now["calls"] != "" && now["consumer"] != "" && now["bucket"] != "" {
			return o.waitHealthy(r)
		}
		var lastErr error
		for _, subj := range subjects {
			body, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": others[try%len(others)]}})
			// An unanswered stepdown (a loaded server) is asked again.
			if _, err := o.nc.Request(subj, body, 2*time.Second); err != nil {
				lastErr = fmt.Errorf("%s: %w", subj, err)
			}
		}
		if lastErr != nil && try == 19 {
			return lastErr
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("server %s still leads a group after 20 stepdowns", server)
}

// pathGroups are the groups the calls' completions need once they are
// published: the consumer hands them out, the bucket records results.
// (The calls stream's leader takes submissions; the watcher and the meta
// leader are bridged by the submitter's watchdog.)
var pathGroups = []string{"consumer", "bucket"}

// elected reports whether the dead server led a group on the path, and
// when the last of those had a leader again (as seen by the observer).
func (rc *recovery) elected() (time.Duration, bool) {
	<-rc.done
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var d time.Duration
	led := false
	for _, g := range pathGroups {
		if rc.before[g] == rc.dead {
			led = true
			back, ok := rc.back[g]
			if !ok {
				back = 20 * time.Second
			}
			d = max(d, back)
		}
	}
	return d, led
}
