package secrets

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSignAWSMatchesTheSigV4TestSuite reproduces get-vanilla from AWS's
// published Signature Version 4 test suite.
func TestSignAWSMatchesTheSigV4TestSuite(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "https://example.amazonaws.com/", nil)
	now := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	SignAWS(req, nil, AWSCredentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}, "us-east-1", "service", now)
	want := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
	if got := req.Header.Get("Authorization"); got != want {
		t.Fatalf("Authorization\n got %s\nwant %s", got, want)
	}
}

// TestSignTC3MatchesTencentsDocumentedExample reproduces the worked example
// of Tencent Cloud's "Signature v3" page (CVM DescribeInstances at
// 1551113065, the page's masked credentials taken literally).
func TestSignTC3MatchesTencentsDocumentedExample(t *testing.T) {
	body := []byte(`{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}`)
	req, _ := http.NewRequest(http.MethodPost, "https://cvm.tencentcloudapi.com", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	creds := TencentCredentials{SecretID: "AKID" + strings.Repeat("*", 32), SecretKey: strings.Repeat("*", 32)}
	SignTC3(req, body, creds, "cvm", "DescribeInstances", time.Unix(1551113065, 0))
	want := "TC3-HMAC-SHA256 Credential=AKID" + strings.Repeat("*", 32) + "/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host;x-tc-action, Signature=10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f"
	if got := req.Header.Get("Authorization"); got != want {
		t.Fatalf("Authorization\n got %s\nwant %s", got, want)
	}
}
