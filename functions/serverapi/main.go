// Command serverapi is payfn's signed server API (service mode: every route
// under /v1/, each request signed with its app's key) for AWS Lambda and
// Tencent SCF.
package main

import (
	"net/http"
	"os"

	"github.com/payfn/payfn/shared/runtime"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/setup"
)

func main() {
	logger := setup.Logger(os.Getenv)
	h, err := setup.HandlerWith(setup.ServerAPI, func(api *httpapi.API) http.Handler { return api.ServerAPI() }, os.Getenv, logger)
	if err != nil {
		logger.Error("cannot start", "function", setup.ServerAPI, "err", err)
		os.Exit(1)
	}
	runtime.Start(h, logger)
}
