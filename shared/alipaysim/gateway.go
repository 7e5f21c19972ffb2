package alipaysim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Methods the gateway serves.
const (
	MethodWapPay      = "alipay.trade.wap.pay"
	MethodCreate      = "alipay.trade.create"
	MethodQuery       = "alipay.trade.query"
	MethodClose       = "alipay.trade.close"
	MethodRefund      = "alipay.trade.refund"
	MethodRefundQuery = "alipay.trade.fastpay.refund.query"
)

// Gateway codes (公共错误码) and the sub_codes the simulator answers.
const (
	CodeSuccess       = "10000"
	CodeUnavailable   = "20000"
	CodeMissingParam  = "40001"
	CodeInvalidParam  = "40002"
	CodeBusinessError = "40004"

	SubInvalidSignature    = "isv.invalid-signature"
	SubInvalidAppID        = "isv.invalid-app-id"
	SubInvalidMethod       = "isv.invalid-method"
	SubInvalidTimestamp    = "isv.invalid-timestamp"
	SubInvalidSignType     = "isv.invalid-signature-type"
	SubInvalidCharset      = "isv.invalid-charset"
	SubInvalidFormat       = "isv.invalid-format"
	SubInvalidParameter    = "isv.invalid-parameter"
	SubInvalidEncryptType  = "isv.decryption-error-not-valid-encrypt-type"
	SubAppCertSNNotMatch   = "isv.app-cert-sn-not-match"
	SubRootCertSNNotMatch  = "isv.alipay-root-cert-sn-not-match"
	SubTradeNotExist       = "ACQ.TRADE_NOT_EXIST"
	SubTradeHasSuccess     = "ACQ.TRADE_HAS_SUCCESS"
	SubTradeHasClose       = "ACQ.TRADE_HAS_CLOSE"
	SubTradeHasFinished    = "ACQ.TRADE_HAS_FINISHED"
	SubTradeStatusError    = "ACQ.TRADE_STATUS_ERROR"
	SubContextInconsistent = "ACQ.CONTEXT_INCONSISTENT"
	SubRefundAmtNotEqual   = "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
	SubRefundFeeErr        = "ACQ.REASON_TRADE_REFUND_FEE_ERR"
	SubSellerBalance       = "ACQ.SELLER_BALANCE_NOT_ENOUGH"
	SubInvalidParamACQ     = "ACQ.INVALID_PARAMETER"
	SubSystemError         = "ACQ.SYSTEM_ERROR"
)

var codeMsg = map[string]string{
	CodeSuccess:       "Success",
	CodeUnavailable:   "Service Currently Unavailable",
	CodeMissingParam:  "Missing Required Arguments",
	CodeInvalidParam:  "Invalid Arguments",
	CodeBusinessError: "Business Failed",
}

// field and obj build a JSON object whose keys keep their order, as
// Alipay's replies put code and msg first.
type field struct {
	k string
	v any
}

type obj []field

func (o obj) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(f.k)
		buf.Write(k)
		buf.WriteByte(':')
		var vb bytes.Buffer
		enc := json.NewEncoder(&vb)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(f.v); err != nil {
			return nil, err
		}
		buf.Write(bytes.TrimRight(vb.Bytes(), "\n"))
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// set adds k unless v is an empty string (Alipay leaves empty fields out).
func (o obj) set(k string, v any) obj {
	if s, ok := v.(string); ok && s == "" {
		return o
	}
	return append(o, field{k, v})
}

// apiResult is a method's answer.
type apiResult struct {
	code, subCode, subMsg string
	fields                obj // after code/msg/sub_code/sub_msg
}

func success(fields obj) apiResult { return apiResult{code: CodeSuccess, fields: fields} }

func failure(code, subCode, subMsg string, fields ...field) apiResult {
	return apiResult{code: code, subCode: subCode, subMsg: subMsg, fields: obj(fields)}
}

func bizError(subCode, subMsg string, fields ...field) apiResult {
	return failure(CodeBusinessError, subCode, subMsg, fields...)
}

func invalidParam(msg string) apiResult {
	return bizError(SubInvalidParamACQ, "参数无效: "+msg)
}

func (a apiResult) body() obj {
	o := obj{{"code", a.code}, {"msg", codeMsg[a.code]}}
	o = o.set("sub_code", a.subCode).set("sub_msg", a.subMsg)
	return append(o, a.fields...)
}

// requestParams merges a gateway request's parameters: the form body first,
// then the query string for keys the body lacks (smartwalle posts them all
// in the body; Alipay's own SDKs put the common ones in the query). Only a
// key's first value counts.
func requestParams(r *http.Request) (url.Values, error) {
	ct := r.Header.Get("Content-Type")
	var err error
	if strings.HasPrefix(strings.ToLower(ct), "multipart/form-data") {
		err = r.ParseMultipartForm(1 << 20)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		return nil, err
	}
	p := url.Values{}
	for k, vs := range r.PostForm {
		if len(vs) > 0 {
			p[k] = vs[:1]
		}
	}
	for k, vs := range r.URL.Query() {
		if _, ok := p[k]; !ok && len(vs) > 0 {
			p[k] = vs[:1]
		}
	}
	return p, nil
}

var knownMethods = map[string]bool{
	MethodWapPay: true, MethodCreate: true, MethodQuery: true, MethodClose: true,
	MethodRefund: true, MethodRefundQuery: true, MethodBillDownloadURL: true,
}

// checkRequest applies the gateway's common checks to a request: required
// common parameters, the app, the certificate SNs and the RSA2 signature.
// It returns ok false with the failure to answer.
func (s *Server) checkRequest(p url.Values) (apiResult, bool) {
	missing := func(name, sub string) (apiResult, bool) {
		return failure(CodeMissingParam, "isv.missing-"+sub, "缺少"+name+"参数"), false
	}
	invalid := func(sub, msg string) (apiResult, bool) {
		return failure(CodeInvalidParam, sub, msg), false
	}
	if p.Get("app_id") != s.appID {
		return invalid(SubInvalidAppID, "无效的AppID参数")
	}
	switch st := p.Get("sign_type"); {
	case st == "":
		return missing("签名类型", "signature-type")
	case st != "RSA2":
		return invalid(SubInvalidSignType, "无效的签名类型: alipaysim accepts RSA2 only")
	}
	if p.Get("sign") == "" {
		return missing("签名", "signature")
	}
	switch cs := p.Get("charset"); {
	case cs == "":
		return missing("编码", "charset")
	case !strings.EqualFold(cs, "utf-8"):
		return invalid(SubInvalidCharset, "字符集错误: alipaysim accepts utf-8 only")
	}
	if f := p.Get("format"); f != "" && !strings.EqualFold(f, "JSON") {
		return invalid(SubInvalidFormat, "无效的数据格式")
	}
	switch v := p.Get("version"); {
	case v == "":
		return missing("版本号", "version")
	case v != "1.0":
		return invalid(SubInvalidParameter, "参数无效: version must be 1.0")
	}
	ts := p.Get("timestamp")
	if ts == "" {
		return missing("时间戳", "timestamp")
	}
	t, err := time.ParseInLocation(timeLayout, ts, cst)
	if err != nil {
		return invalid(SubInvalidTimestamp, "非法的时间戳参数")
	}
	if s.timestampWindow > 0 {
		if d := s.now().Sub(t); d > s.timestampWindow || d < -s.timestampWindow {
			return invalid(SubInvalidTimestamp, "非法的时间戳参数: more than "+s.timestampWindow.String()+" from Asia/Shanghai time")
		}
	}
	if p.Get("encrypt_type") != "" {
		return invalid(SubInvalidEncryptType, "无效的加密类型: alipaysim does not support content encryption")
	}
	appSN, rootSN := p.Get("app_cert_sn"), p.Get("alipay_root_cert_sn")
	if s.certMode {
		switch {
		case appSN == "":
			return missing("应用公钥证书序列号", "app-cert-sn")
		case appSN != s.keys.appCertSN:
			return invalid(SubAppCertSNNotMatch, "应用公钥证书序列号不匹配")
		case rootSN == "":
			return missing("支付宝根证书序列号", "alipay-root-cert-sn")
		case rootSN != s.keys.rootSN:
			return invalid(SubRootCertSNNotMatch, "支付宝根证书序列号不匹配")
		}
	} else if appSN != "" || rootSN != "" {
		return invalid(SubAppCertSNNotMatch, "应用未开启公钥证书模式, 请勿传入 app_cert_sn / alipay_root_cert_sn")
	}
	content := signContent(p, "sign")
	if rsa2Verify(s.keys.appPub, []byte(content), p.Get("sign")) != nil {
		return invalid(SubInvalidSignature, "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为："+content)
	}
	return apiResult{}, true
}

// responseName is the reply's key for method: dots become underscores,
// plus "_response".
func responseName(method string) string {
	return strings.ReplaceAll(method, ".", "_") + "_response"
}

// handleGateway serves /gateway.do: the API methods answer signed JSON, and
// alipay.trade.wap.pay answers the cashier page.
func (s *Server) handleGateway(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !s.applyGatewayFaults(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	p, err := requestParams(r)
	if err != nil {
		s.writeError(w, "", failure(CodeInvalidParam, SubInvalidParameter, "参数无效: unreadable request: "+err.Error()))
		return
	}
	method := p.Get("method")
	switch {
	case p.Get("app_id") == "":
		s.writeError(w, method, failure(CodeMissingParam, "isv.missing-app-id", "缺少AppID参数"))
		return
	case method == "":
		s.writeError(w, "", failure(CodeMissingParam, "isv.missing-method", "缺少方法名参数"))
		return
	case !knownMethods[method]:
		s.writeError(w, "", failure(CodeInvalidParam, SubInvalidMethod, "不存在的方法名"))
		return
	}
	res, ok := s.checkRequest(p)
	if method == MethodWapPay {
		s.serveWapPay(w, r, p, res, ok)
		return
	}
	if ok {
		var biz map[string]json.RawMessage
		if err := json.Unmarshal([]byte(p.Get("biz_content")), &biz); err != nil {
			res = failure(CodeInvalidParam, SubInvalidParameter, "参数无效: biz_content is not a JSON object")
		} else {
			res = s.call(method, p, biz)
		}
	}
	if res.subCode == SubInvalidAppID {
		s.writeError(w, method, res)
		return
	}
	s.writeSigned(w, method, res)
}

func (s *Server) call(method string, p url.Values, biz map[string]json.RawMessage) apiResult {
	switch method {
	case MethodCreate:
		return s.apiCreate(p, biz)
	case MethodQuery:
		return s.apiQuery(biz)
	case MethodClose:
		return s.apiClose(biz)
	case MethodRefund:
		return s.apiRefund(biz)
	case MethodRefundQuery:
		return s.apiRefundQuery(biz)
	case MethodBillDownloadURL:
		return s.apiBillDownloadURL(biz)
	}
	return failure(CodeInvalidParam, SubInvalidMethod, "不存在的方法名")
}

// writeSigned answers {"<method>_response":{...},"sign":"..."} (plus
// "alipay_cert_sn" in certificate mode), the signature covering the exact
// bytes of the response object as sent.
func (s *Server) writeSigned(w http.ResponseWriter, method string, res apiResult) {
	inner, err := res.body().MarshalJSON()
	if err != nil {
		http.Error(w, "encode reply: "+err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	bad := s.faults.BadResponseSignature
	s.mu.Unlock()
	signed := inner
	if bad {
		signed = append(bytes.Clone(inner), ' ')
	}
	sign, err := rsa2Sign(s.keys.alipayKey, signed)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	buf.WriteString(`{"`)
	buf.WriteString(responseName(method))
	buf.WriteString(`":`)
	buf.Write(inner)
	if s.certMode {
		buf.WriteString(`,"alipay_cert_sn":"`)
		buf.WriteString(s.keys.alipayCertSN)
		buf.WriteString(`"`)
	}
	buf.WriteString(`,"sign":"`)
	buf.WriteString(sign)
	buf.WriteString(`"}`)
	writeGatewayBody(w, buf.Bytes())
}

// writeError answers an unsigned error: under "<method>_response" when the
// method is known, else under "error_response".
func (s *Server) writeError(w http.ResponseWriter, method string, res apiResult) {
	name := "error_response"
	if knownMethods[method] {
		name = responseName(method)
	}
	inner, _ := res.body().MarshalJSON()
	writeGatewayBody(w, []byte(`{"`+name+`":`+string(inner)+`}`))
}

func writeGatewayBody(w http.ResponseWriter, b []byte) {
	// Alipay's gateway labels its JSON replies text/html.
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// yuanField is an amount in biz_content: Alipay's "Price" is documented as
// a string, but SDKs also send JSON numbers; both are read exactly.
type yuanField struct {
	raw string
	set bool
}

func (y *yuanField) UnmarshalJSON(b []byte) error {
	y.set = true
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &y.raw)
	}
	if string(b) == "null" {
		y.set = false
		return nil
	}
	y.raw = string(b)
	return nil
}

// fen parses the amount; positive requires it to be at least 0.01.
func (y yuanField) fen(name string, positive bool) (int64, *apiResult) {
	if !y.set || y.raw == "" {
		r := invalidParam(name + " 不能为空")
		return 0, &r
	}
	f, err := parseYuan(y.raw)
	if err != nil || (positive && f <= 0) {
		r := invalidParam(name + " 格式错误 (" + y.raw + ")")
		return 0, &r
	}
	return f, nil
}

// decodeBiz fills v from the biz_content fields.
func decodeBiz(biz map[string]json.RawMessage, v any) *apiResult {
	b, _ := json.Marshal(biz)
	if err := json.Unmarshal(b, v); err != nil {
		r := failure(CodeInvalidParam, SubInvalidParameter, "参数无效: biz_content: "+err.Error())
		return &r
	}
	return nil
}
