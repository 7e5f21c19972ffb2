package app

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the caller: what went wrong, not where. The
// HTTP layer owns the one table from Kind to status code.
type Kind int

// Error kinds.
const (
	KindInternal        Kind = iota // a bug or an unexpected failure
	KindInvalid                     // the request is malformed or breaks a rule
	KindUnauthenticated             // no valid session, login code or signature
	KindNotFound                    // it does not exist, or is not the caller's
	KindConflict                    // it exists, but its state forbids this
	KindTooLarge                    // the request body is over the limit
	KindUnavailable                 // a dependency (store, WeChat) failed; retry
	KindBadGateway                  // a dependency answered with an error we cannot fix by retrying
	KindTooMany                     // the caller is over a limit; retry later
)

// Error is a use-case failure with a stable Code for programs and a Message
// for people. Message never holds a secret or an internal detail; Err keeps
// the cause for the logs.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Stable error codes. Clients may rely on them; they never change meaning.
const (
	CodeInvalidRequest       = "INVALID_REQUEST"
	CodeUnknownField         = "UNKNOWN_FIELD"
	CodeInvalidProductID     = "INVALID_PRODUCT_ID"
	CodeInvalidQuantity      = "INVALID_QUANTITY"
	CodeInvalidRequestID     = "INVALID_REQUEST_ID"
	CodeInvalidOrderID       = "INVALID_ORDER_ID"
	CodeInvalidLoginCode     = "INVALID_LOGIN_CODE"
	CodeOrderTooLarge        = "ORDER_TOO_LARGE"
	CodeBodyTooLarge         = "BODY_TOO_LARGE"
	CodeUnsupportedMedia     = "UNSUPPORTED_MEDIA_TYPE"
	CodeMethodNotAllowed     = "METHOD_NOT_ALLOWED"
	CodeNotFound             = "NOT_FOUND"
	CodeUnauthenticated      = "UNAUTHENTICATED"
	CodeLoginRejected        = "LOGIN_CODE_REJECTED"
	CodeProductNotFound      = "PRODUCT_NOT_FOUND"
	CodeProductNotOnSale     = "PRODUCT_NOT_ON_SALE"
	CodeOrderNotFound        = "ORDER_NOT_FOUND"
	CodeIdempotencyConflict  = "IDEMPOTENCY_CONFLICT"
	CodeOrderNotPayable      = "ORDER_NOT_PAYABLE"
	CodeOrderExpired         = "ORDER_EXPIRED"
	CodeInvalidNotification  = "INVALID_NOTIFICATION"
	CodeNotificationMismatch = "NOTIFICATION_MISMATCH"
	CodeStoreUnavailable     = "STORE_UNAVAILABLE"
	CodeChannelUnavailable   = "PAYMENT_CHANNEL_UNAVAILABLE"
	CodeChannelError         = "PAYMENT_CHANNEL_ERROR"
	CodeInternal             = "INTERNAL"
	CodeTooManyOpenOrders    = "TOO_MANY_OPEN_ORDERS"
	// CodeSecretsUnavailable: on a cloud, the function could not read its
	// secret yet (shared/setup answers it before the use cases run).
	CodeSecretsUnavailable = "SECRETS_UNAVAILABLE"
)

// Errorf builds an *Error of kind and code with a formatted message.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorOf returns err as an *Error, classifying anything else as internal.
func ErrorOf(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: KindInternal, Code: CodeInternal, Message: "internal error", Err: err}
}

// storeError classifies a store failure the use case did not expect: the
// store could not answer, so the caller should retry later.
func storeError(op string, err error) *Error {
	return &Error{Kind: KindUnavailable, Code: CodeStoreUnavailable, Message: "the order store is unavailable, try again", Err: fmt.Errorf("%s: %w", op, err)}
}

// channelError classifies a WeChat Pay failure.
func channelError(op string, err error) *Error {
	if errors.Is(err, ErrChannelUnavailable) {
		return &Error{Kind: KindUnavailable, Code: CodeChannelUnavailable, Message: "WeChat Pay is unavailable, try again", Err: fmt.Errorf("%s: %w", op, err)}
	}
	return &Error{Kind: KindBadGateway, Code: CodeChannelError, Message: "WeChat Pay refused the request", Err: fmt.Errorf("%s: %w", op, err)}
}
