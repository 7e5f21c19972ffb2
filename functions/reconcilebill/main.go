// Command reconcilebill is payfn's daily bill reconciliation job (each
// configured provider's trade bill, WeChat Pay's and Alipay's, against the
// ledger) for AWS Lambda (EventBridge schedule) and Tencent SCF (timer
// trigger).
package main

import (
	"os"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/runtime"
	"github.com/payfn/payfn/shared/setup"
)

func main() {
	logger := setup.Logger(os.Getenv)
	job, err := setup.JobWith(setup.ReconcileBill, func(a *app.App) setup.Job { return a.ReconcileBills }, os.Getenv, logger)
	if err != nil {
		logger.Error("cannot start", "function", setup.ReconcileBill, "err", err)
		os.Exit(1)
	}
	runtime.StartJob(job, logger)
}
