//go:build pin

// Package pin keeps the pinned dependencies in go.mod while the packages that
// use them are being written. Removed once every one is imported for real.
package pin

import (
	_ "github.com/FerretDB/FerretDB/ferretdb"
	_ "github.com/aws/aws-lambda-go/events"
	_ "github.com/aws/aws-lambda-go/lambda"
	_ "github.com/aws/aws-lambda-go/lambdacontext"
	_ "github.com/awslabs/goformation/v7"
	_ "github.com/tencentyun/scf-go-lib/cloudfunction"
	_ "github.com/tencentyun/scf-go-lib/events"
	_ "github.com/tencentyun/scf-go-lib/functioncontext"
	_ "github.com/wechatpay-apiv3/wechatpay-go/core"
	_ "github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	_ "github.com/wechatpay-apiv3/wechatpay-go/core/downloader"
	_ "github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	_ "github.com/wechatpay-apiv3/wechatpay-go/core/option"
	_ "github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
	_ "github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"
	_ "github.com/wechatpay-apiv3/wechatpay-go/utils"
	_ "go.mongodb.org/mongo-driver/v2/mongo"
	_ "gopkg.in/yaml.v3"
	_ "github.com/google/go-cmp/cmp"
)
