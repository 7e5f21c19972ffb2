package tencentscf

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/tencentyun/scf-go-lib/functioncontext"

	"github.com/payfn/payfn/shared/runtime/httpapi"
)

// StartJob serves a scheduled function (an SCF timer trigger): every
// invocation runs job once, whatever the event says. It blocks.
func StartJob[T any](job func(context.Context) (T, error), logger *slog.Logger) {
	startRPC(jsonInvoke(JobHandler(job, logger)))
}

// JobHandler returns the SCF handler of a scheduled job. A failed or
// panicking job returns an error, so SCF counts the invocation as failed;
// the next timer tick runs it again.
func JobHandler[T any](job func(context.Context) (T, error), logger *slog.Logger) func(context.Context, json.RawMessage) (T, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, _ json.RawMessage) (res T, err error) {
		if fc, ok := functioncontext.FromContext(ctx); ok {
			ctx = httpapi.WithRequestID(ctx, fc.RequestID)
		}
		defer func() {
			if p := recover(); p != nil {
				logger.ErrorContext(ctx, "scheduled job panicked", "request_id", httpapi.RequestID(ctx), "panic", p)
				err = errors.New("scheduled job panicked")
			}
		}()
		return job(ctx)
	}
}
