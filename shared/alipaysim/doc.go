// Package alipaysim is an Alipay OpenAPI (gateway.do, v1.0 common
// parameters) simulator for tests and local runs. It speaks Alipay's wire
// protocol, so an Alipay client such as smartwalle/alipay v3 runs against it
// unchanged when given GatewayURL as its gateway: it verifies the merchant's
// RSA2 request signatures (public-key or certificate mode), signs every
// reply over the exact bytes of the response object, serves
// alipay.trade.wap.pay (a cashier page), alipay.trade.create (JSAPI_PAY),
// query, close, refund and fastpay.refund.query, and when someone pays or a
// refund settles it POSTs a signed trade_status_sync notification to the
// trade's notify_url with Alipay's retry schedule. Fault knobs make it
// misbehave on request.
//
// # Endpoints
//
//   - GET or POST /gateway.do: parameters from the form body and/or the query
//     string (the body wins for a key in both; only a key's first value
//     counts). API methods answer 200 with
//     {"<method with dots as underscores>_response":{...},"sign":"..."} (plus
//     "alipay_cert_sn" in certificate mode); alipay.trade.wap.pay answers the
//     browser with a 302 to its cashier page.
//   - GET /cashier/{trade_no}: the cashier page (merchant, subject, amount, a
//     Pay button and a Cancel link).
//   - POST /cashier/{trade_no}/pay (no body needed): pays; 302 to return_url
//     with the signed synchronous return parameters (see ReturnParams), or
//     303 back to the page when there is no return_url. A plain http.Client
//     that does not follow redirects reads them from Location.
//   - GET /cashier/{trade_no}/quit: 302 to quit_url; the trade stays unpaid.
//   - /sim/...: the control API (below).
//
// # Signatures
//
// Requests: every parameter except sign, empty values dropped, sorted by
// key, "k=v" joined with "&", SHA256withRSA (PKCS#1 v1.5) Base64, checked
// with the app public key. sign_type is signed, as smartwalle signs it (its
// URLValues signs all values, nsign with no ignore list). A bad signature
// answers 40002 isv.invalid-signature, with the string the gateway verified
// in sub_msg as Alipay does. In certificate mode the request must also carry
// app_cert_sn and alipay_root_cert_sn equal to Keys.AppCertSN / RootCertSN.
//
// Replies: the sign covers the raw JSON of the response object as sent,
// which is what smartwalle's decode verifies (it slices the raw message out
// of the body). Notifications and return parameters: every parameter except
// sign and sign_type, sorted, empty values dropped; the simulator never
// sends an empty value, because smartwalle's verifier would keep it as "k=".
//
// Certificate SNs are computed as smartwalle (getCertSN,
// LoadAliPayRootCert) and gopay compute them: MD5 hex of the issuer DN as
// Go's pkix.Name.String prints it followed by the decimal serial number;
// the root SN joins the SNs of the root file's certificates signed with
// sha1WithRSA or sha256WithRSA with "_". The generated root file holds an
// RSA root and an ECDSA root (as Alipay's mixes algorithms), so only one SN
// counts. Both public key certificates are issued directly by the RSA root.
//
// # Choices where Alipay's documentation is silent
//
// Callers should not depend on these beyond the simulator.
//
//   - The gateway's common checks come before the method's: unknown app_id
//     answers an unsigned 40002 isv.invalid-app-id; a missing method or an
//     unknown one answers an unsigned "error_response"; every other answer
//     about a known app is signed, errors included.
//   - Certificate mismatches answer 40002 isv.app-cert-sn-not-match /
//     isv.alipay-root-cert-sn-not-match (missing ones 40001
//     isv.missing-app-cert-sn / isv.missing-alipay-root-cert-sn); a
//     public-key-mode app sending either SN is refused with
//     isv.app-cert-sn-not-match. Content encryption (encrypt_type) is not
//     supported and is refused.
//   - timestamp must parse as "2006-01-02 15:04:05" (read as Asia/Shanghai);
//     it is compared with the clock only when Options.TimestampWindow is set
//     (smartwalle stamps time.Local unless given WithTimeLocation).
//   - Malformed amounts (more than two decimals, signs, exponents, leading
//     zeros, a bare point, zero, above 100000000) answer 40004
//     ACQ.INVALID_PARAMETER, as Alipay answers 订单总金额格式错误. Amounts are
//     read exactly into fen; a JSON number is accepted as its literal text.
//   - The same out_trade_no again: unpaid with the same product, amount and
//     subject returns the same trade (a wap page re-opened keeps the trade
//     and takes the new return_url/quit_url); otherwise
//     ACQ.CONTEXT_INCONSISTENT, or ACQ.TRADE_HAS_SUCCESS / _HAS_CLOSE /
//     _HAS_FINISHED by state. A wap trade exists only once its page was
//     opened (query before that: ACQ.TRADE_NOT_EXIST).
//   - time_expire accepts "yyyy-MM-dd HH:mm:ss" and "yyyy-MM-dd HH:mm";
//     timeout_express "Nm", "Nh", "Nd", "1c"; the default is 15 days. An
//     unpaid trade past its deadline reads TRADE_CLOSED (checked lazily);
//     timeouts and alipay.trade.close send no notification.
//   - Close answers ACQ.TRADE_STATUS_ERROR for anything not WAIT_BUYER_PAY,
//     a closed trade included.
//   - Refunds: a repeated out_request_no with the same amount answers 10000
//     with fund_change "N" (no money moves) and refund_fee the total so
//     far; with another amount, ACQ.INVALID_PARAMETER. Without
//     out_request_no the request is named by out_trade_no and must refund
//     the whole amount (ACQ.REFUND_AMT_NOT_EQUAL_TOTAL otherwise). Refunding
//     more than is left (processing refunds included) answers
//     ACQ.REASON_TRADE_REFUND_FEE_ERR; an unpaid trade
//     ACQ.TRADE_STATUS_ERROR; a closed one ACQ.TRADE_HAS_CLOSE; a finished
//     one ACQ.TRADE_HAS_FINISHED. Refund errors carry out_trade_no,
//     refund_fee "0.00" and send_back_fee "0.00" as Alipay's samples do.
//   - fastpay.refund.query of an unknown out_request_no answers 10000 with
//     only code and msg; of a processing refund, the amounts without
//     refund_status; gmt_refund_pay only when query_options asks for it.
//   - A notification counts as acknowledged when the answer is HTTP 200 and
//     its body, with surrounding white space trimmed, is "success". Retries
//     resend the identical signed form (same notify_id and notify_time).
//     Every notification (payment, each settled refund, TRADE_FINISHED) has
//     its own notify_id. Notifications do not carry alipay_cert_sn, in
//     either mode (smartwalle then verifies with the certificate it loaded).
//   - A wap payment's buyer is a random 2088… buyer_id; a JSAPI trade keeps
//     the buyer_id or buyer_open_id it was created with. PayOptions.AmountFen
//     makes total_amount, buyer_pay_amount and receipt_amount carry the paid
//     amount (a genuinely different payment the merchant must catch).
//   - The gateway answers JSON with Content-Type text/html;charset=utf-8, as
//     Alipay's does; wap error pages answer 200 (409 for paying twice from
//     the cashier) with the sub_code in the X-Alipaysim-Sub-Code header.
//
// # Control API
//
// Go methods: PayTrade (by trade_no or out_trade_no; PayOptions for a wrong
// amount, TRADE_FINISHED, no notification, the buyer), FinishTrade,
// CloseTrade, Trade, Trades, Refunds, SettleRefund, Notifications,
// Deliveries, Resend, WaitAcked, WaitDeliveries, SetFaults / CurrentFaults,
// FailNext, SignedNotification, NotificationParams, Sign, Deliver,
// ReturnParams, Keys. HTTP (JSON, no signature):
//
//	GET  /sim/keys                                   Keys, private keys included
//	GET  /sim/trades                                 [TradeState]
//	GET  /sim/trades/{no}                            TradeState (no: trade_no or out_trade_no)
//	POST /sim/trades/{no}/pay      {"amount_fen","finish","no_notify","buyer_id","buyer_open_id"}
//	POST /sim/trades/{no}/finish   {"no_notify"}
//	POST /sim/trades/{no}/close                      closes an unpaid trade silently
//	GET  /sim/trades/{no}/refunds                    [RefundState]
//	POST /sim/trades/{no}/refunds/{out_request_no}/settle
//	GET  /sim/notifications[?out_trade_no=]          [Notification] with deliveries
//	POST /sim/notifications/{notify_id}/resend       Delivery
//	POST /sim/sign-notification {"params":{...},"deliver_to":"url"}
//	GET  /sim/faults                                 the faults in force
//	POST /sim/faults  {"bad_response_signature","response_delay_ms","drop_notifications",
//	                   "async_refunds","refund_settle_delay_ms","refund_balance_not_enough",
//	                   "fail_next":{"count","status","hang_ms"}}   omitted fields are cleared
//
// # Keys and the data folder
//
// By default the keys live in memory: Options may pass them, else they are
// generated (RSA-2048). With Options.DataDir the simulator writes, on first
// start, and reads back afterwards:
//
//	alipay_private_key.pem        PKCS#8  the "Alipay" key: sign notifications, replies, return params as Alipay
//	alipay_public_key.pem         PKIX    支付宝公钥: what a merchant configures in public-key mode
//	app_private_key.pem           PKCS#8  应用私钥 (only when the simulator generated the merchant key)
//	app_public_key.pem            PKIX    应用公钥: what the simulator verifies requests with
//	alipay_root_ca_key.pem        PKCS#8  the CA key that issued the certificates (certificate mode)
//	alipayRootCert.crt                    支付宝根证书 (two roots; SN from the RSA one)
//	alipayCertPublicKey_RSA2.crt          支付宝公钥证书
//	appCertPublicKey.crt                  应用公钥证书
//	alipaysim-state.json                  trades and refunds (Options.StatePath overrides)
//
// An outside tool acting as the merchant (a curl script, another SDK, the
// payfn channel under a dev stack) uses the app id, app_private_key.pem and
// either alipay_public_key.pem or the three .crt files, with the gateway
// http://HOST:PORT/gateway.do; e.g. smartwalle: alipay.New(appID,
// appPrivateKeyPEM, false, alipay.WithSandboxGateway(gateway)) then
// LoadAliPayPublicKey, or LoadAppCertPublicKeyFromFile +
// LoadAliPayRootCertFromFile + LoadAlipayCertPublicKeyFromFile. A tool
// acting as Alipay (forging a notification for a merchant under test) signs
// with alipay_private_key.pem by the notification rule above, or asks a
// running simulator: POST /sim/sign-notification. Delete the folder to start
// afresh; a state file of another app_id, or a key file that differs from a
// key passed in Options, is refused rather than mixed in.
//
// State kept across restarts: trades and refunds (written atomically soon
// after each change, and on Close). Not kept: notifications and their
// delivery history, faults; a notification still being retried when the
// simulator stopped is not resumed.
//
// The only payfn package alipaysim imports is shared/internal/simkit (the
// listener, state file and waiting plumbing it shares with paysim). It must
// never be imported by a function binary (functions/*); only tests, scripts
// and the local dev stack use it.
package alipaysim
