package awslambda

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/payfn/payfn/shared/runtime/httpapi"
)

// StartJob serves a scheduled function (an EventBridge schedule): every
// invocation runs job once, whatever the event says. It blocks.
func StartJob[T any](job func(context.Context) (T, error), logger *slog.Logger) {
	lambda.StartHandlerFunc(JobHandler(job, logger))
}

// JobHandler returns the Lambda handler of a scheduled job. A failed or
// panicking job returns an error, so Lambda counts the invocation as failed
// (and the alarm sees it); the next schedule runs it again.
func JobHandler[T any](job func(context.Context) (T, error), logger *slog.Logger) func(context.Context, json.RawMessage) (T, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, _ json.RawMessage) (res T, err error) {
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			ctx = httpapi.WithRequestID(ctx, lc.AwsRequestID)
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
