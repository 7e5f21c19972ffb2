// Package runtime starts a payfn function on whichever cloud runtime the
// process finds itself in, so one main serves AWS Lambda, Tencent SCF
// (and CloudBase event functions), and the platforms that run it as a web
// server: CloudBase HTTP functions and WeChat Cloud Hosting containers.
//
// It imports only the adapters (awslambda, tencentscf, httpserver); it must
// not import shared/app or shared/order.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/payfn/payfn/shared/runtime/awslambda"
	"github.com/payfn/payfn/shared/runtime/httpserver"
	"github.com/payfn/payfn/shared/runtime/tencentscf"
)

// Platform names a cloud runtime.
type Platform string

// The platforms Start can serve.
const (
	AWSLambda  Platform = "aws-lambda"
	TencentSCF Platform = "tencent-scf"
	// HTTPServer is a plain web server on PORT: a CloudBase HTTP function
	// (its scf_bootstrap sets PORT=9000) or a WeChat Cloud Hosting
	// container.
	HTTPServer Platform = "http"
)

// Environment variables the runtimes set and the libraries read.
const (
	// envAWSRuntimeAPI is the Lambda Runtime API address on provided.*
	// runtimes; aws-lambda-go's lambda.Start serves through it.
	envAWSRuntimeAPI = "AWS_LAMBDA_RUNTIME_API"
	// envRPCPort is the net/rpc port scf-go-lib's cloudfunction.Start
	// listens on. AWS's retired go1.x runtime used the same variable.
	envRPCPort = "_LAMBDA_SERVER_PORT"
	// envAWSFunctionName is set by every Lambda runtime; with envRPCPort it
	// means go1.x rather than SCF.
	envAWSFunctionName = "AWS_LAMBDA_FUNCTION_NAME"
	// envTencentRunEnv is "SCF" inside Tencent SCF (documented built-in).
	envTencentRunEnv = "TENCENTCLOUD_RUNENV"
	// envPort is the port of a function run as a web server.
	envPort = httpserver.EnvPort
)

// ErrNoRuntime is returned by Detect when the environment is no cloud
// runtime it knows (a laptop, a CI job).
var ErrNoRuntime = errors.New("no cloud runtime detected")

// Detect tells which platform the environment read through getenv belongs to.
//
// AWS_LAMBDA_RUNTIME_API means AWS Lambda. Otherwise _LAMBDA_SERVER_PORT
// means Tencent SCF, unless AWS_LAMBDA_FUNCTION_NAME is also set: that is
// AWS's retired go1.x RPC runtime, which binaries built with -tags
// lambda.norpc cannot serve. Otherwise PORT means a web server on that port
// (a CloudBase HTTP function, whose scf_bootstrap sets it, or a container).
// TENCENTCLOUD_RUNENV=SCF without either port is an SCF runtime scf-go-lib
// cannot listen for (it would pick a random port). Anything else is
// ErrNoRuntime.
func Detect(getenv func(string) string) (Platform, error) {
	switch {
	case getenv(envAWSRuntimeAPI) != "":
		return AWSLambda, nil
	case getenv(envRPCPort) != "" && getenv(envAWSFunctionName) != "":
		return "", fmt.Errorf("unsupported runtime: AWS Lambda go1.x RPC (%s and %s set); deploy on provided.al2023", envRPCPort, envAWSFunctionName)
	case getenv(envRPCPort) != "":
		return TencentSCF, nil
	case getenv(envPort) != "":
		return HTTPServer, nil
	case getenv(envTencentRunEnv) == "SCF":
		return "", fmt.Errorf("incomplete runtime: Tencent SCF (%s=SCF) without %s or %s; deploy as a Go event function, or as an HTTP function with its scf_bootstrap", envTencentRunEnv, envRPCPort, envPort)
	default:
		return "", fmt.Errorf("%w: none of %s, %s, %s is set", ErrNoRuntime, envAWSRuntimeAPI, envRPCPort, envPort)
	}
}

// Option adjusts how Start serves a function.
type Option func(*options)

type options struct {
	dataRoute string
}

// DataRoute makes an SCF (CloudBase) event function take the plain data
// events of wx.cloud.callFunction too, each served as POST path with the
// data as its JSON body (see tencentscf.Options). Only the client functions
// take it; the other platforms ignore it.
func DataRoute(path string) Option {
	return func(o *options) { o.dataRoute = path }
}

// Start detects the platform from the process environment and serves h
// through its adapter; it blocks. If no platform is detected it logs an
// error and exits with status 1, failing the cold start loudly.
func Start(h http.Handler, logger *slog.Logger, opts ...Option) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	p, logger := mustDetect(logger, "function")
	switch p {
	case AWSLambda:
		awslambda.Start(h, logger)
	case TencentSCF:
		tencentscf.Start(h, logger, tencentscf.Options{DataRoute: o.dataRoute})
	case HTTPServer:
		httpserver.Start(h, logger)
	}
}

// StartJob is Start for a scheduled function: each invocation runs job once.
// A job has no HTTP server: on PORT alone it fails its start.
func StartJob[T any](job func(context.Context) (T, error), logger *slog.Logger) {
	p, logger := mustDetect(logger, "scheduled function")
	switch p {
	case AWSLambda:
		awslambda.StartJob(job, logger)
	case TencentSCF:
		tencentscf.StartJob(job, logger)
	case HTTPServer:
		logger.Error("cannot start scheduled function: it runs on a timer trigger (Lambda or an SCF event function), not as a web server", "port", os.Getenv(envPort))
		os.Exit(1)
	}
}

// mustDetect is the start-up both Start functions share: a default JSON
// logger, the platform, and exit 1 when there is none.
func mustDetect(logger *slog.Logger, kind string) (Platform, *slog.Logger) {
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	p, err := Detect(os.Getenv)
	if err != nil {
		logger.Error("cannot start function: no usable runtime", "err", err)
		os.Exit(1)
	}
	logger.Info("starting "+kind, "platform", string(p))
	return p, logger
}
