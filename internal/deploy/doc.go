// Package deploy holds no code, only the tests that prove payfn's deployment
// artifacts without a cloud account: template.yaml (AWS SAM) parsed with
// goformation and validated against its SAM schema, serverless.yml (Tencent
// SCF) parsed strictly, both checked against functions/ and shared/setup, the
// real function binaries built by scripts/build and driven through the Lambda
// Runtime API and scf-go-lib's net/rpc protocol, and the database permission
// artifacts under deploy/.
package deploy
