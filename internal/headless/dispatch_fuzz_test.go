package headless

import (
	"encoding/json"
	"testing"
)

// FuzzDispatch feeds the reader's dispatch arbitrary messages, as a
// broken or hostile browser could send them: it never panics or blocks,
// a reply reaches its caller only once, and an event reaches its page.
func FuzzDispatch(f *testing.F) {
	for _, seed := range []string{
		`{"id":1,"result":{"product":"Chrome"}}`,
		`{"id":1,"error":{"code":-32000,"message":"nope","data":"x"}}`,
		`{"method":"Runtime.exceptionThrown","sessionId":"s1","params":{"exceptionDetails":{"text":"Uncaught","exception":{"description":"Error: boom"}}}}`,
		`{"method":"Runtime.consoleAPICalled","sessionId":"s1","params":{"type":"error","args":[{"value":"x"},{"description":"y"}]}}`,
		`{"method":"Log.entryAdded","sessionId":"s1","params":{"entry":{"level":"error","text":"refused","source":"security"}}}`,
		`{"method":"Log.entryAdded","sessionId":"s1","params":{"entry":{"level":"error","text":7}}}`,
		`{"id":"1"}`, `{"id":99}`, `[1,2]`, `null`, `{`, "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ch := make(chan reply, 1)
		b := &Browser{waiting: map[int64]chan reply{1: ch}, pages: map[string]*Page{}}
		p := &Page{b: b, session: "s1"}
		b.pages["s1"] = p
		b.dispatch(raw)
		b.dispatch(raw) // a duplicate reply finds nobody waiting and is dropped
		var m message
		isReply := json.Unmarshal(raw, &m) == nil && m.ID == 1
		select {
		case rep := <-ch:
			if !isReply {
				t.Fatalf("a reply for a message that is not one: %q", raw)
			}
			if (m.Error != nil) != (rep.err != nil) {
				t.Fatalf("error %v for %q", rep.err, raw)
			}
		default:
			if isReply {
				t.Fatalf("the reply %q did not reach its caller", raw)
			}
		}
		_ = p.Problems()
	})
}
