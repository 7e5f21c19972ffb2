// Command container serves payfn's mini-program functions from one process
// on PORT: the image the repository's Dockerfile builds for WeChat Cloud
// Hosting (微信云托管), called with wx.cloud.callContainer. It serves
// createOrder, pay and queryOrder, and the two WeChat Pay notifications, each
// on its route (login too in token mode, where it is the only way to a
// session), and answers 404 NOT_FOUND elsewhere.
//
// With PAYFN_IDENTITY=platform the client functions take the caller from the
// X-WX-OPENID, X-WX-APPID and X-WX-SOURCE headers Cloud Hosting sets on a
// callContainer request: keep the service's public access for the
// notification paths only, or off (docs/platform.md).
//
// Each function is built as its own function binary builds it (shared/setup,
// with only the settings it needs), so the container behaves as the
// functions do, one process instead of five.
package main

import (
	"net/http"
	"os"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/runtime/httpserver"
	"github.com/payfn/payfn/shared/setup"
)

// served are the functions the container serves in every identity mode.
var served = []setup.Function{setup.CreateOrder, setup.Pay, setup.QueryOrder, setup.VerifyPayment, setup.VerifyRefund}

func main() {
	logger := setup.Logger(os.Getenv)
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		logger.Error("cannot start", "err", err)
		os.Exit(1)
	}
	fns := served
	if cfg.Identity == config.IdentityToken {
		fns = append([]setup.Function{setup.Login}, fns...)
	}
	mux := http.NewServeMux()
	for _, fn := range fns {
		h, err := setup.Handler(fn, os.Getenv, logger)
		if err != nil {
			logger.Error("cannot start", "function", fn, "err", err)
			os.Exit(1)
		}
		mux.Handle(path(fn), h)
	}
	mux.Handle("/", httpapi.New(app.New(app.Config{}), logger).NotFound())
	logger.Info("serving functions", "functions", fns, "identity", cfg.Identity)
	httpserver.Start(mux, logger)
}

// path is fn's route.
func path(fn setup.Function) string {
	for _, f := range setup.Functions {
		if f.Name == fn {
			return f.Path
		}
	}
	panic("no route for " + string(fn))
}
