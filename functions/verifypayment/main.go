// Command verifypayment is payfn's verifypayment function for AWS Lambda,
// Tencent SCF and CloudBase HTTP functions (scf_bootstrap, PORT).
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
	h, err := setup.HandlerWith(setup.VerifyPayment, func(api *httpapi.API) http.Handler { return api.VerifyPayment() }, os.Getenv, logger)
	if err != nil {
		logger.Error("cannot start", "function", setup.VerifyPayment, "err", err)
		os.Exit(1)
	}
	runtime.Start(h, logger)
}
