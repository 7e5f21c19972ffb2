// Command receiver is a sample webhook receiver for a project's server (the
// code is in package receiver): it verifies each payfn delivery with the
// endpoint's signing secret, processes each event once and logs it.
//
//	PAYFN_WEBHOOK_SECRET=whsec_… go run ./scripts/receiver [-addr 127.0.0.1:8091]
//
// Register it with `go run ./scripts/payfnctl endpoints add APP -url
// http://127.0.0.1:8091/`, which shows the secret once.
package main

import (
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/payfn/payfn/scripts/receiver/receiver"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8091", "address to listen on")
	secret := flag.String("secret", "", "the endpoint's signing secret, whsec_… (default $PAYFN_WEBHOOK_SECRET, which keeps it out of the process list)")
	flag.Parse()
	if *secret == "" {
		*secret = os.Getenv("PAYFN_WEBHOOK_SECRET")
	}

	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	h, err := receiver.New(*secret, logger, nil)
	if err != nil {
		logger.Error("set -secret or PAYFN_WEBHOOK_SECRET to the endpoint's signing secret", "err", err)
		os.Exit(2)
	}
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	logger.Info("sample webhook receiver listening", "url", "http://"+*addr+"/")
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("listen", "err", err)
		os.Exit(1)
	}
}
