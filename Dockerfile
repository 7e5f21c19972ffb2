# payfn's mini-program functions in one container, for WeChat Cloud Hosting
# (微信云托管): createOrder, pay, queryOrder and the WeChat Pay notifications
# on PORT (deploy/cloudbase/container; docs/platform.md). Build from the
# repository root:
#
#   docker build -t payfn .
#
# Cloud Hosting builds this file from the repository root as it is. Every
# setting comes from the service's environment variables, none from the
# image: PAYFN_IDENTITY=platform, WECHAT_APPID, MONGODB_URI, the merchant's
# settings (README "Configuration").
FROM golang:1.26 AS build
# The module proxy the build reaches from mainland China; override with
# --build-arg GOPROXY=... elsewhere.
ARG GOPROXY=https://goproxy.cn,direct
ENV GOPROXY=${GOPROXY} CGO_ENABLED=0
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The flags every function binary is built with (scripts/build).
RUN go build -tags lambda.norpc -trimpath -ldflags='-s -w' -o /out/payfn ./deploy/cloudbase/container

FROM scratch
# TLS roots for WeChat Pay, WeChat's login API and MongoDB; nothing else.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/payfn /payfn
# The process is not root, so it cannot listen below port 1024: set the
# Cloud Hosting service's port (服务端口, 80 by default) to 8080.
ENV PORT=8080
EXPOSE 8080
USER 65534:65534
ENTRYPOINT ["/payfn"]
