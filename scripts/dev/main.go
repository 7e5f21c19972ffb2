// Command dev runs payfn's local stack on loopback with no cloud account: an
// embedded MongoDB-wire store (FerretDB, SQLite, data in -data) unless
// MONGODB_URI is set, the WeChat Pay simulator unless WECHATPAY_MCHID is set,
// the Alipay simulator unless ALIPAY_APP_ID is set, every payment channel
// (unless PAYFN_CHANNELS is set), every function on one port with the cloud
// routes, seeded demo products and
// a checkout page that walks a purchase end to end in a browser. Service mode
// is on too: a demo app whose webhooks go to the in-process sample receiver
// (scripts/receiver), and the dispatcher running every second; the startup
// summary prints a `go run ./scripts/payfnctl call` line to try it.
//
//	go run ./scripts/dev [-addr 127.0.0.1:8080] [-sim-addr 127.0.0.1:8081] [-alipay-sim-addr 127.0.0.1:8082] [-data .payfn] [-fresh]
//
// The embedded store scans whole collections, so it slows as orders pile up
// in the data folder; -fresh starts over without deleting anything.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/payfn/payfn/scripts/dev/devstack"
)

func main() {
	var o devstack.Options
	flag.StringVar(&o.Addr, "addr", "127.0.0.1:8080", "address of the functions and the checkout page")
	flag.StringVar(&o.SimAddr, "sim-addr", "127.0.0.1:8081", "address of the WeChat Pay simulator")
	flag.StringVar(&o.AlipaySimAddr, "alipay-sim-addr", "127.0.0.1:8082", "address of the Alipay simulator")
	flag.StringVar(&o.DataDir, "data", ".payfn", "folder for the embedded store's data and the local keys")
	flag.BoolVar(&o.Fresh, "fresh", false, "move the data folder aside (keeping the local keys) and start with an empty store and simulator")
	flag.Parse()

	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	o.Getenv = os.Getenv
	o.Logger = logger
	s, err := devstack.Start(ctx, o)
	if err != nil {
		logger.Error("local stack failed to start", "err", err)
		os.Exit(1)
	}
	fmt.Print(s.Summary())
	<-ctx.Done()
	fmt.Println("stopping…")
	if err := s.Close(); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("stop", "err", err)
		os.Exit(1)
	}
}
