module github.com/flowline-go/flowline/bench/flow

go 1.26.0

require (
	github.com/flowline-go/flowline v0.0.0
	github.com/noneback/go-taskflow v1.2.0
)

require (
	github.com/fatih/color v1.13.0 // indirect
	github.com/hashicorp/go-hclog v1.6.3 // indirect
	github.com/mattn/go-colorable v0.1.12 // indirect
	github.com/mattn/go-isatty v0.0.24 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/flowline-go/flowline => ../../
