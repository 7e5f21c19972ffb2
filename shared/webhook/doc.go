// Package webhook signs, verifies and sends payfn's webhooks to projects'
// servers, following Standard Webhooks v1 (https://www.standardwebhooks.com,
// spec/standard-webhooks.md in github.com/standard-webhooks/standard-webhooks).
//
// # Receiving
//
// A project's server verifies a delivery with [Verify] on the raw request
// body (before any JSON decoding: re-encoding changes the bytes and breaks
// the signature), then uses the webhook-id header as its idempotency key,
// because a delivery can arrive more than once.
//
// # Sending
//
// payfn's dispatcher signs each attempt with [Headers] (a fresh timestamp per
// attempt, the same id across retries) and posts it with [Sender.Send]. The
// Sender refuses non-public addresses at connect time so that an endpoint URL
// cannot be used to reach payfn's own network (SSRF); [CheckURL] gives the
// same answer early, when an endpoint is registered.
//
// # Dependencies
//
// This package imports only the Go standard library and no other payfn
// package: projects' servers import it, and must not pull in payfn's
// dependencies to verify a signature.
package webhook
