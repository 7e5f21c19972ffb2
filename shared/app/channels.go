package app

import (
	"context"
	"fmt"
	"slices"

	"github.com/payfn/payfn/shared/order"
)

// channelsByName indexes the configured channels; the first of a name wins.
func channelsByName(def Channel, more []Channel) map[string]Channel {
	m := make(map[string]Channel, 1+len(more))
	for _, ch := range append([]Channel{def}, more...) {
		if ch == nil {
			continue
		}
		if _, ok := m[ch.Name()]; !ok {
			m[ch.Name()] = ch
		}
	}
	return m
}

// channelNamed returns the configured channel name. An order whose channel
// is not configured here cannot be acted on; that is the channel being
// unavailable, not the order being wrong.
func (a *App) channelNamed(name string) (Channel, error) {
	if name == "" {
		name = order.DefaultChannel
	}
	ch, ok := a.channels[name]
	if !ok {
		return nil, fmt.Errorf("channel %s is not configured here: %w", name, ErrChannelUnavailable)
	}
	return ch, nil
}

// channelOf returns the channel the order is paid through.
func (a *App) channelOf(o order.Order) (Channel, error) { return a.channelNamed(o.ChannelName()) }

// provider returns a configured channel of the provider: they share its
// merchant and notification format, so any of them reads its notifications.
func (a *App) provider(name string) (Channel, error) {
	if a.channel != nil && a.channel.Provider() == name {
		return a.channel, nil
	}
	var found Channel
	for _, ch := range a.channels {
		if ch.Provider() == name && (found == nil || ch.Name() < found.Name()) {
			found = ch
		}
	}
	if found == nil {
		return nil, fmt.Errorf("no %s channel is configured here: %w", name, ErrChannelUnavailable)
	}
	return found, nil
}

// KnownChannels are the channel names payfn has implementations of.
var KnownChannels = []string{ChannelWeChatJSAPI, ChannelWeChatH5, ChannelAlipayWap, ChannelAlipayMini}

// ConfiguredChannels lists the names of the channels configured here.
func (a *App) ConfiguredChannels() []string {
	names := make([]string, 0, len(a.channels))
	for n := range a.channels {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// queryRefund asks the refund's channel about it.
func (a *App) queryRefund(ctx context.Context, r order.Refund) (RefundResult, error) {
	ch, err := a.channelNamed(r.ChannelName())
	if err != nil {
		return RefundResult{}, err
	}
	return ch.QueryRefund(ctx, r.OrderID, r.ID)
}

// queryTrade asks the order's channel about it.
func (a *App) queryTrade(ctx context.Context, o order.Order) (Transaction, error) {
	ch, err := a.channelOf(o)
	if err != nil {
		return Transaction{}, err
	}
	return ch.QueryOrder(ctx, o.ID)
}

// ChannelWrapper is a channel that decorates another (timing its calls,
// say). What a channel implements beyond Channel (Resigner,
// RefundNotifier, BillSource) is looked for through wrappers.
type ChannelWrapper interface {
	Unwrap() Channel
}

// capability finds T on ch or on a channel it wraps.
func capability[T any](ch Channel) (T, bool) {
	for ch != nil {
		if t, ok := ch.(T); ok {
			return t, true
		}
		w, ok := ch.(ChannelWrapper)
		if !ok {
			break
		}
		ch = w.Unwrap()
	}
	var zero T
	return zero, false
}
