package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/flowline-go/flowline/dashboard"
	"github.com/flowline-go/flowline/executor/local"
	"github.com/flowline-go/flowline/flow"
	"github.com/flowline-go/flowline/store/sqlite"
	"github.com/flowline-go/flowline/task"
)

// Mount the dashboard under /flows/ of a service's mux, over the service's
// run store, with the flows whose graphs it should draw. Put your
// service's authentication in front of it: the dashboard has none.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "dashboard-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "runs.db"), sqlite.Options{})
	if err != nil {
		panic(err)
	}
	defer st.Close()

	hello := task.New("hello", func(_ context.Context, _ struct{}) (string, error) { return "hi", nil }, task.Options{})
	b := flow.New("greet", flow.Options{})
	flow.Add(b, hello, nil)
	f, err := b.Build()
	if err != nil {
		panic(err)
	}
	if _, err := f.Run(ctx, local.New(local.Options{}), flow.RunOptions{Store: st, RunID: "greet-1"}); err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/flows/", dashboard.New(st, dashboard.Options{Flows: []*flow.Flow{f}, BasePath: "/flows"}))
	srv := httptest.NewServer(mux) // in a service: http.ListenAndServe(addr, yourAuth(mux))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/flows/runs/greet-1")
	if err != nil {
		panic(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status)
	fmt.Println(strings.Contains(string(page), `<svg class="graph"`), strings.Contains(string(page), `data-task="hello" data-state="Success"`))
	// Output:
	// 200 OK
	// true true
}
