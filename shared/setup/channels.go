package setup

import (
	"fmt"
	"log/slog"
	"slices"

	"github.com/payfn/payfn/shared/alipay"
	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/wxpay"
)

// channelMaker builds the channels of one provider that PAYFN_CHANNELS
// lists, from that provider's settings (part). wx is the WeChat Pay
// channel when the function has one.
type channelMaker struct {
	part  config.Part
	build func(cfg config.Config, wx *wxpay.Channel, logger *slog.Logger) ([]app.Channel, error)
}

// channelMakers register the channels beyond WeChat Pay JSAPI (which
// config.PartPay builds as the default channel). A new channel is its own
// package plus one line here.
var channelMakers = []channelMaker{
	{config.PartPay, wechatH5},
	{config.PartAlipay, alipayChannels},
}

// moreChannels builds the registered channels the function's parts allow.
func moreChannels(cfg config.Config, parts []config.Part, wx *wxpay.Channel, logger *slog.Logger) ([]app.Channel, error) {
	var out []app.Channel
	for _, m := range channelMakers {
		if !slices.Contains(parts, m.part) {
			continue
		}
		chs, err := m.build(cfg, wx, logger)
		if err != nil {
			return nil, err
		}
		out = append(out, chs...)
	}
	return out, nil
}

// wechatH5 is the WeChat Pay merchant's H5 channel: the JSAPI channel's
// merchant, client and notify URL, prepaying through /v3/pay/transactions/h5.
func wechatH5(cfg config.Config, wx *wxpay.Channel, _ *slog.Logger) ([]app.Channel, error) {
	if !cfg.HasChannel(app.ChannelWeChatH5) || wx == nil {
		return nil, nil
	}
	return []app.Channel{wx.H5()}, nil
}

// alipayChannels are the Alipay merchant's wap and mini-program channels,
// those PAYFN_CHANNELS lists, sharing one client (no network I/O here).
func alipayChannels(cfg config.Config, _ *wxpay.Channel, logger *slog.Logger) ([]app.Channel, error) {
	if !cfg.UsesAlipay() {
		return nil, nil
	}
	a := cfg.Alipay
	c, err := alipay.New(alipay.Config{
		AppID: a.AppID, SellerID: a.SellerID, AppPrivateKeyPEM: a.AppPrivateKeyPEM,
		PublicKeyPEM: a.PublicKeyPEM, AppCertPEM: a.AppCertPEM, RootCertPEM: a.RootCertPEM, PublicCertPEM: a.PublicCertPEM,
		GatewayURL: a.GatewayURL, NotifyURL: a.NotifyURL, MiniAppID: a.MiniAppID, Timeout: a.Timeout, Logger: logger,
	})
	if err != nil {
		return nil, fmt.Errorf("alipay: %w", err)
	}
	var out []app.Channel
	if cfg.HasChannel(app.ChannelAlipayWap) {
		out = append(out, c.Wap())
	}
	if cfg.HasChannel(app.ChannelAlipayMini) {
		out = append(out, c.Mini())
	}
	return out, nil
}
