package infra

import "runtime"

func goarchHost() string { return runtime.GOARCH }
