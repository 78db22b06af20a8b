package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/flowline-go/flowline/store"
)

// FuzzPrint feeds the printers what another process wrote into the
// store (states, error messages, parameters, results: any bytes): the
// text is printed without a panic, one table row per record, and the JSON
// is valid and gives the recorded values back.
func FuzzPrint(f *testing.F) {
	f.Add("Failed", "failure", "boom\nsecond line", []byte(`{"day":"mon"}`), []byte(`[1,2]`), "pool/0")
	f.Add("", "", "", []byte{}, []byte(nil), "")
	f.Add("Running", "x", "\t\t\x00\xff", []byte{0xff, 0xfe}, []byte(`"\u0000"`), "\n")
	f.Fuzz(func(t *testing.T, state, class, msg string, params, value []byte, worker string) {
		r := store.Run{ID: "r1", Flow: "f", State: state, ErrClass: class, ErrMessage: msg, Params: params,
			Created: time.Unix(1_800_000_000, 0), Ended: time.Unix(1_800_000_001, 0)}
		trs := []store.TaskRun{{RunID: "r1", Label: "t", State: state, Value: value, ErrClass: class, ErrMessage: msg, Attempts: 1}}
		as := []store.Attempt{{RunID: "r1", Label: "t", N: 1, State: state, ErrClass: class, ErrMessage: msg, Worker: worker}}
		var text bytes.Buffer
		c := &cli{stdout: &text}
		if err := c.printRun(r, trs, as); err != nil {
			t.Fatal(err)
		}
		if err := c.printRuns([]store.Run{r}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		c = &cli{stdout: &out, json: true}
		if err := c.printRun(r, trs, as); err != nil {
			t.Fatal(err)
		}
		if !json.Valid(out.Bytes()) {
			t.Fatalf("invalid JSON: %q", out.String())
		}
		var got struct {
			Run struct {
				Error  string          `json:"error"`
				Params json.RawMessage `json:"params"`
			} `json:"run"`
			Tasks []struct {
				Value      json.RawMessage `json:"value"`
				ValueBytes int             `json:"value_bytes"`
			} `json:"tasks"`
		}
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if utf8.ValidString(msg) && got.Run.Error != msg {
			t.Errorf("error %q came back as %q", msg, got.Run.Error)
		}
		if len(got.Tasks) != 1 {
			t.Fatalf("%d tasks", len(got.Tasks))
		}
		if json.Valid(value) && len(value) > 0 {
			if !jsonEqual(value, got.Tasks[0].Value) {
				t.Errorf("value %q came back as %q", value, got.Tasks[0].Value)
			}
		} else if got.Tasks[0].ValueBytes != len(value) {
			t.Errorf("value of %d bytes reported as %d", len(value), got.Tasks[0].ValueBytes)
		}
	})
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && mustJSON(x) == mustJSON(y)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestOneLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven char", 10, "eleven ch…"},
		{"two\nlines", 10, "two …"},
		{"ünïcödé ünïcödé", 8, "ünïcödé…"},
		{"", 5, ""},
	} {
		assert := func(got string) {
			if got != tc.want {
				t.Errorf("oneLine(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
		}
		assert(oneLine(tc.in, tc.n))
	}
}

func TestShowDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		840*time.Microsecond + 123:                            "840µs",
		12*time.Millisecond + 345*time.Microsecond:            "12.3ms",
		1234 * time.Millisecond:                               "1.23s",
		3*time.Minute + 12*time.Second + 400*time.Millisecond: "3m12s",
		-time.Second: "-",
	} {
		if got := showDuration(d); got != want {
			t.Errorf("showDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
