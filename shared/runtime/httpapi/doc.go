// Package httpapi is payfn's HTTP face: one http.Handler per function
// (decode and validate the request, authenticate the caller, call the use
// case in shared/app, encode the answer or a {code, message, request_id}
// error, the request id also in X-Request-Id on every answer). Every
// runtime adapter (AWS Lambda, Tencent SCF, local net/http) serves these same
// handlers, so behaviour is identical on every platform.
//
// It imports shared/app, shared/order and shared/identity (the platform
// caller an adapter puts in the context), and no cloud runtime, database
// driver or WeChat Pay SDK.
package httpapi
