// Command shareProfits is payfn's profit-sharing job (分账: split paid
// orders that carry a split rule, unfreeze the remainder, return shares
// after refunds) for AWS Lambda (EventBridge schedule) and Tencent SCF
// (timer trigger).
package main

import (
	"os"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/runtime"
	"github.com/payfn/payfn/shared/setup"
)

func main() {
	logger := setup.Logger(os.Getenv)
	job, err := setup.JobWith(setup.ShareProfits, func(a *app.App) setup.Job { return a.ShareProfits }, os.Getenv, logger)
	if err != nil {
		logger.Error("cannot start", "function", setup.ShareProfits, "err", err)
		os.Exit(1)
	}
	runtime.StartJob(job, logger)
}
