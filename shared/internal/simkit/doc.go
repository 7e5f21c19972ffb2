// Package simkit is the plumbing the payment-channel simulators
// (shared/paysim, shared/alipaysim) share: the HTTP listener and the
// background goroutines stopped together on Close (Server), the JSON state
// file written atomically soon after each change (StateFile), waiting for a
// condition over state that goroutines change (Changes), and the small
// helpers of their control APIs (WriteJSON, DecodeJSON, Drain, random IDs).
// Each simulator keeps its protocol: signing, trades, notification content
// and retry schedules stay in it.
//
// simkit imports no other payfn package. Like the simulators it is for
// tests, scripts and the local dev stack: no function binary (functions/*)
// may link it (internal/layout checks this).
package simkit
