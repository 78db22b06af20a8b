package limit_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowline-go/flowline/limit"
)

// A Set with one concurrency limit: the second attempt waits, first in
// line, until the first gives its slot back.
func ExampleSet_Acquire() {
	set, err := limit.New(limit.Options{}, limit.Limit{Name: "payments", Concurrency: 1})
	if err != nil {
		panic(err)
	}
	defer set.Close()
	keys := []limit.Key{{Limit: "payments"}}
	first, _, _ := set.Acquire(context.Background(), "charge#1", keys, nil)
	granted := make(chan *limit.Hold, 1)
	_, wait, _ := set.Acquire(context.Background(), "charge#2", keys, func(h *limit.Hold, err error) { granted <- h })
	fmt.Println("second waits:", wait)
	first.Release()
	second := <-granted
	fmt.Println("second holds it:", second != nil)
	second.Release()
	st := set.Stats()[0]
	fmt.Println("held", st.Held, "waiting", st.Waiting, "granted", st.Granted, "waits", st.Waits)
	// Output:
	// second waits: limit "payments" key "": position 1 (concurrency)
	// second holds it: true
	// held 0 waiting 0 granted 2 waits 1
}

// Keys derived from the input: one run per customer at a time.
func ExampleKeyed() {
	type order struct{ Customer string }
	uses := []limit.Use{limit.Keyed("customer", func(o order) string { return o.Customer }), {Limit: "payments"}}
	keys, err := limit.Keys("charge", uses, order{Customer: "c42"})
	fmt.Println(keys, err)
	// Output:
	// [{customer c42} {payments }] <nil>
}

// A limit of zero is refused when the Set is made.
func ExampleNew() {
	_, err := limit.New(limit.Options{}, limit.Limit{Name: "vendor", Per: time.Minute})
	fmt.Println(err)
	fmt.Println(errors.Is(err, limit.ErrZero))
	// Output:
	// limit: limit "vendor": a limit of zero (neither Concurrency nor Rate is set)
	// true
}
