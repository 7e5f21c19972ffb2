// Package app holds payfn's use cases: Login, CreateOrder, Pay,
// VerifyPayment and QueryOrder. It depends on shared/order and on the small
// interfaces in ports.go (Store, Channel, Sessions, CodeExchanger), which
// shared/store, shared/wxpay and shared/identity implement.
//
// It must not import a database driver, the WeChat Pay SDK, a cloud runtime
// or any other payfn package but order.
package app
