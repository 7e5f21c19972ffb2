// Command adminapps is payfn's app administration (service mode: /admin/apps
// and everything under it, merchant only, admin key) for AWS Lambda and
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
	h, err := setup.HandlerWith(setup.AdminApps, func(api *httpapi.API) http.Handler { return api.AdminApps() }, os.Getenv, logger)
	if err != nil {
		logger.Error("cannot start", "function", setup.AdminApps, "err", err)
		os.Exit(1)
	}
	runtime.Start(h, logger)
}
