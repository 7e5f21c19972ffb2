//go:build !payfn_extstore

package storetest

import (
	"context"
	"fmt"

	"github.com/payfn/payfn/shared/store/embedded"
)

// startServer starts the embedded store in this process.
func startServer(ctx context.Context, dir string) (string, error) {
	srv, err := embedded.Start(ctx, embedded.Options{Dir: dir})
	if err != nil {
		return "", fmt.Errorf("storetest: %w", err)
	}
	return srv.URI(), nil
}
