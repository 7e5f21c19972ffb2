// Command closeexpired is payfn's scheduled closeexpired job for AWS Lambda (EventBridge
// schedule) and Tencent SCF (timer trigger).
package main

import (
	"os"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/runtime"
	"github.com/payfn/payfn/shared/setup"
)

func main() {
	logger := setup.Logger(os.Getenv)
	job, err := setup.JobWith(setup.CloseExpired, func(a *app.App) setup.Job { return a.CloseExpired }, os.Getenv, logger)
	if err != nil {
		logger.Error("cannot start", "function", setup.CloseExpired, "err", err)
		os.Exit(1)
	}
	runtime.StartJob(job, logger)
}
