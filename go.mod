module github.com/payfn/payfn

go 1.26

require (
	github.com/FerretDB/FerretDB v1.24.0 // indirect
	github.com/aws/aws-lambda-go v1.55.1 // indirect
	github.com/awslabs/goformation/v7 v7.14.9 // indirect
	github.com/tencentyun/scf-go-lib v0.0.0-20211123032342-f972dcd16ff6 // indirect
	github.com/wechatpay-apiv3/wechatpay-go v0.2.21 // indirect
	go.mongodb.org/mongo-driver/v2 v2.9.3 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
