package paysim_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"

	"github.com/payfn/payfn/shared/paysim"
)

const tradeBillURL = "https://api.mch.weixin.qq.com/v3/bill/tradebill?bill_type=ALL&bill_date="

func TestTradeBillIsWeChatsFormatWithItsDigest(t *testing.T) {
	sim := startSim(t, nil)
	client := publicKeyClient(t, sim)
	svc := jsapi.JsapiApiService{Client: client}
	id := prepay(t, svc, prepayRequest("BILL0000001", "https://merchant.example/notify", 2801))
	paid, err := sim.Pay(context.Background(), id, paysim.PayOptions{NoNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	day := paid.SuccessTime.Format(time.DateOnly)
	ctx := ctxTimeout(t)

	res, err := client.Get(ctx, tradeBillURL+day) // signed, and its answer verified
	if err != nil {
		t.Fatal(err)
	}
	var ans struct {
		HashType    string `json:"hash_type"`
		HashValue   string `json:"hash_value"`
		DownloadURL string `json:"download_url"`
	}
	b, _ := io.ReadAll(res.Response.Body)
	if err := json.Unmarshal(b, &ans); err != nil || ans.HashType != "SHA1" || len(ans.HashValue) != 40 ||
		!strings.HasPrefix(ans.DownloadURL, "https://api.mch.weixin.qq.com/v3/billdownload/file?token=") {
		t.Fatalf("tradebill answered %s (%v)", b, err)
	}
	// The file is not signed: fetched with a signed request, checked by
	// its digest.
	dl := core.NewClientWithValidator(client, &validators.NullValidator{})
	res, err = dl.Get(ctx, ans.DownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	file, _ := io.ReadAll(res.Response.Body)
	if sum := sha1.Sum(file); hex.EncodeToString(sum[:]) != ans.HashValue {
		t.Fatalf("digest %x, tradebill said %s", sum, ans.HashValue)
	}
	lines := strings.Split(strings.TrimRight(string(file), "\r\n"), "\r\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "交易时间,公众账号ID,商户号,") || !strings.HasPrefix(lines[2], "总交易单数,") {
		t.Fatalf("bill:\n%s", file)
	}
	f := strings.Split(lines[1], ",`")
	if len(f) != 27 || f[0] != "`"+paid.SuccessTime.Format(time.DateTime) || f[5] != paid.TransactionID || f[6] != "BILL0000001" ||
		f[9] != "SUCCESS" || f[12] != "28.01" || f[24] != "28.01" {
		t.Errorf("row %q", f)
	}
	if lines[3] != "`1,`28.01,`0.00,`0.00,`0.00000,`28.01,`0.00" {
		t.Errorf("summary row %q", lines[3])
	}

	// The download needs the merchant's signature; a token is the bill's.
	req, _ := http.NewRequest(http.MethodGet, ans.DownloadURL, nil)
	if resp, err := sim.HTTPClient().Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("unsigned download: %v %v", resp.StatusCode, err)
	}
	if _, err := dl.Get(ctx, "https://api.mch.weixin.qq.com/v3/billdownload/file?token=nope"); !core.IsAPIError(err, "RESOURCE_NOT_EXISTS") {
		t.Errorf("unknown token: %v", err)
	}

	// A day without trades has no bill; a bill can be not ready, edited.
	if _, err := client.Get(ctx, tradeBillURL+paid.SuccessTime.AddDate(0, 0, -1).Format(time.DateOnly)); !core.IsAPIError(err, "NO_STATEMENT_EXIST") {
		t.Errorf("empty day: %v", err)
	}
	sim.SetBillFaults(paysim.BillFaults{NotReady: true})
	if _, err := client.Get(ctx, tradeBillURL+day); !core.IsAPIError(err, "STATEMENT_CREATING") {
		t.Errorf("not ready: %v", err)
	}
	sim.SetBillFaults(paysim.BillFaults{})
	sim.SetBillEdit(func(r *paysim.BillRow) bool { return r.OutTradeNo != "BILL0000001" })
	if _, err := client.Get(ctx, tradeBillURL+day); !core.IsAPIError(err, "NO_STATEMENT_EXIST") {
		t.Errorf("every row dropped: %v", err)
	}
}
