package app_test

import (
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/app"
)

func TestAuthenticateAdminAcceptsThePreviousKeyDuringARotation(t *testing.T) {
	oldKey, newKey, other := strings.Repeat("o", 32), strings.Repeat("n", 32), strings.Repeat("x", 32)
	during := app.New(app.Config{AdminKey: newKey, AdminKeyPrevious: oldKey})
	for _, k := range []string{oldKey, newKey} {
		if err := during.AuthenticateAdmin(k); err != nil {
			t.Errorf("during the rotation key %.1s... is refused: %v", k, err)
		}
	}
	for _, k := range []string{other, ""} {
		if err := during.AuthenticateAdmin(k); app.ErrorOf(err).Code != app.CodeAdminUnauthorized {
			t.Errorf("key %q: %v, want ADMIN_UNAUTHENTICATED", k, err)
		}
	}
	after := app.New(app.Config{AdminKey: newKey})
	if err := after.AuthenticateAdmin(oldKey); err == nil {
		t.Error("the old key still passes once it is no longer configured")
	}
	// A previous key alone authenticates nothing: it only extends a current one.
	if err := app.New(app.Config{AdminKeyPrevious: oldKey}).AuthenticateAdmin(oldKey); err == nil {
		t.Error("a previous key without a current one passes")
	}
}
