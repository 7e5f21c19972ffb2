// Package alipay is payfn's Alipay channel: one Client per Alipay
// application, and its two app.Channel values, Wap (alipay_wap:
// alipay.trade.wap.pay, a signed pay_url for a mobile browser) and Mini
// (alipay_mini: alipay.trade.create, a trade_no for my.tradePay), sharing
// query, close, refund, refund query and the asynchronous notification.
// Amounts on the wire are yuan strings, parsed and written exactly
// (ParseYuan, FormatYuan), never through floats.
//
// # Library
//
// Gateway calls go through github.com/smartwalle/alipay/v3 (v3.2.25),
// chosen over github.com/go-pay/gopay (v1.5.108) because:
//
//   - it is small: the package and its three helper modules (ncrypto,
//     nsign, ngx) use only the standard library, and payfn calls it
//     through its generic Payload and Request, so little of it is linked;
//     the function binaries must stay within 12 MB;
//   - it checks a reply's signature before believing what the reply says:
//     a signed error answer decodes as data, an unsigned one comes back as
//     an error, a reply with a bad signature is an error. gopay's alipay
//     package checks the answer's code (bizErrCheck) before its signature,
//     so an unsigned ACQ.TRADE_NOT_EXIST would be taken at its word;
//   - it verifies each reply's signature over the reply's exact bytes, and
//     handles both key modes (public key, and public-key certificates with
//     app_cert_sn / alipay_root_cert_sn) from configuration text.
//
// Its one behaviour payfn must not have, downloading an Alipay certificate
// inside a call when a reply names an unknown alipay_cert_sn (production
// mode only), is avoided by building it in sandbox mode with the gateway
// set explicitly (see New). Notifications are verified here, not by the
// SDK (see ParseNotification for why).
//
// # Key modes
//
// Public-key mode takes Alipay's public key; certificate mode takes the
// application's certificate, Alipay's root certificates and Alipay's
// public-key certificate, all from configuration. When Alipay changes its
// certificate, replies and notifications naming the new one fail as the
// channel unavailable (notifications are then retried by Alipay) until the
// new certificate is configured.
//
// It imports shared/app, shared/order and the SDK only: never
// shared/store, shared/runtime, shared/alipaysim or a cloud runtime.
package alipay
