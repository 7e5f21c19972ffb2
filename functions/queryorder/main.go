// Command queryorder is payfn's queryorder function for AWS Lambda, Tencent SCF (also as a
// CloudBase event function that wx.cloud.callFunction invokes) and CloudBase
// HTTP functions (scf_bootstrap, PORT).
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
	h, err := setup.HandlerWith(setup.QueryOrder, func(api *httpapi.API) http.Handler { return api.QueryOrder() }, os.Getenv, logger)
	if err != nil {
		logger.Error("cannot start", "function", setup.QueryOrder, "err", err)
		os.Exit(1)
	}
	runtime.Start(h, logger, runtime.DataRoute(httpapi.PathQueryOrder))
}
