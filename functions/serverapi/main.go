// Command serverapi is payfn's signed server API (service mode: every route
// under /v1/, each request signed with its app's key) for AWS Lambda and
// Tencent SCF.
package main

import (
	"os"

	"github.com/payfn/payfn/shared/runtime"
	"github.com/payfn/payfn/shared/setup"
)

func main() {
	logger := setup.Logger(os.Getenv)
	h, err := setup.Handler(setup.ServerAPI, os.Getenv, logger)
	if err != nil {
		logger.Error("cannot start", "function", setup.ServerAPI, "err", err)
		os.Exit(1)
	}
	runtime.Start(h, logger)
}
