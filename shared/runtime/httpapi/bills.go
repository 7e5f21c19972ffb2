package httpapi

import (
	"net/http"
	"strings"

	"github.com/payfn/payfn/shared/app"
)

// PathBills is where the operator reads the daily bill reports:
// GET /admin/bills/{date}?channel=wechatpay|alipay, with the admin key.
const PathBills = "/admin/bills/"

// Bills serves GET /admin/bills/{date} (YYYY-MM-DD, China time): the
// report of that day's bill reconciliation, with the merchant admin key in
// X-Payfn-Admin-Key; ?channel= names the provider's bill (app.BillChannels,
// default wechatpay; another is 400 INVALID_BILL_CHANNEL). 200 with the
// report; 404 BILL_REPORT_NOT_FOUND when the job has not run for that day.
func (api *API) Bills() http.Handler {
	return api.handle("bills", func(w http.ResponseWriter, r *http.Request, lg *logLine) error {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			return &httpError{status: http.StatusMethodNotAllowed, code: app.CodeMethodNotAllowed, msg: "use GET"}
		}
		if err := api.app.AuthenticateAdmin(r.Header.Get(HeaderAdminKey)); err != nil {
			return err
		}
		day, ok := strings.CutPrefix(r.URL.Path, PathBills)
		if !ok || day == "" || strings.Contains(day, "/") {
			return app.Errorf(app.KindInvalid, app.CodeInvalidBillDate, "GET /admin/bills/YYYY-MM-DD")
		}
		q, err := query(r, "channel")
		if err != nil {
			return err
		}
		rep, err := api.app.BillReport(r.Context(), q.Get("channel"), day)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, rep)
	})
}
