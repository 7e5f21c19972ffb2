// Package paysim is a WeChat Pay APIv3 server simulator for tests and local
// runs. It speaks the wire protocol, so the real wechatpay-go client runs
// against it unchanged when its http.Client rewrites the scheme and host (see
// Server.HTTPClient): it verifies the merchant's request signatures over the
// raw request target, signs every reply, serves JSAPI and H5 prepay (with the
// page an h5_url opens, h5.go), query, close and the platform certificate
// download, the mini-program login API
// (/sns/jscode2session), and when someone "pays" it delivers a signed,
// AES-256-GCM encrypted TRANSACTION.SUCCESS notification with WeChat's retry
// schedule. Fault knobs make it misbehave on request.
//
// Choices where WeChat's documentation is silent or APIv2-only (callers
// should not depend on them beyond the simulator):
//   - prepay for an order that is already paid, and close of a paid order,
//     answer 400 ORDERPAID (the APIv2 code; APIv3 tables do not list one);
//   - prepay for a closed order answers 400 ORDER_CLOSED;
//   - close of an unknown order answers 404 ORDER_NOT_EXIST; closing a
//     closed order again answers 204;
//   - one RSA key serves as both the platform certificate key and the WeChat
//     Pay public key; they differ only by serial (certificate serial vs
//     public key id), which is what verifiers select on.
//
// By default everything lives in memory; with Options.StatePath the trades,
// prepay_ids and refunds are kept in a JSON file (written atomically soon
// after each change, and on Close) so a restarted simulator carries on, as
// the dev stack needs.
//
// The control API (Go methods, and HTTP under /sim/) needs no signature; it
// is for tests, the dev stack's checkout page and scripts. Mount the server
// at the root of a listener: request signatures cover r.RequestURI.
//
// The only payfn package paysim imports is shared/internal/simkit (the
// listener, state file and waiting plumbing it shares with alipaysim). It
// must never be imported by a function binary (functions/*); only tests,
// scripts and the local dev stack use it.
package paysim
