package httpapi

import (
	"net/http"

	"github.com/payfn/payfn/shared/identity"
)

// UsePlatformIdentity switches the client functions (createOrder, pay,
// queryOrder) to platform identity: their caller is the one the runtime
// adapter put in the request context (identity.WithPlatformCaller), as p
// accepts it, and an Authorization header means nothing. Without it
// (token mode, the default) the caller is the session token's and the
// context's platform caller is never read, so X-WX-* headers a client sends
// choose nothing. Call it once, before serving.
func (api *API) UsePlatformIdentity(p *identity.Platform) {
	api.platform = p
}

// caller returns the openid of the client calling r, from the one place
// this deployment takes it. Errors: UNAUTHENTICATED.
func (api *API) caller(r *http.Request) (string, error) {
	if api.platform != nil {
		return api.platform.Authenticate(r.Context())
	}
	return api.app.Authenticate(bearerToken(r))
}
