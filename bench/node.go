package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"

	"github.com/payfn/payfn/internal/repo"
)

// NodeAvailable reports whether node and npm are on PATH.
func NodeAvailable() bool {
	_, err1 := exec.LookPath("node")
	_, err2 := exec.LookPath("npm")
	return err1 == nil && err2 == nil
}

// EnsureNode installs bench/node's pinned packages with npm ci when
// node_modules is missing, and returns the folder.
func EnsureNode() (string, error) {
	root, err := repo.Root()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "bench", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "wechatpay-node-v3", "package.json")); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "mongodb", "package.json")); err == nil {
			return dir, nil
		}
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci in %s: %v\n%s", dir, err, b)
	}
	return dir, nil
}

// NodeVersion is `node --version`.
func NodeVersion() string {
	b, err := exec.Command("node", "--version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// PeerResult is what peer.js measured.
type PeerResult struct {
	Iterations int     `json:"iterations"`
	WallNsOp   float64 `json:"wall_ns_per_op"`
	CPUNsOp    float64 `json:"cpu_ns_per_op"`
	Node       string  `json:"node"`
}

type peerNotice struct {
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// WritePeerInputs writes the fixture's keys and the given notifications to
// dir, for peer.js.
func WritePeerInputs(dir string, f *Fixture, ns []Notice) error {
	cfg := map[string]string{
		"appid": AppID, "mchid": MchID, "mch_serial": MchSerial, "apiv3_key": APIv3Key,
		"merchant_key_pem": f.MerchantPEM, "public_key_pem": f.Keys.PublicKeyPEM, "public_key_id": f.Keys.PublicKeyID,
	}
	list := make([]peerNotice, len(ns))
	for i, n := range ns {
		h := map[string]string{}
		for k, vs := range n.Header {
			h[strings.ToLower(k)] = strings.Join(vs, ",")
		}
		list[i] = peerNotice{Headers: h, Body: string(n.Body)}
	}
	for name, v := range map[string]any{"config.json": cfg, "notifications.json": list} {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// RunPeer runs peer.js over the notifications in dataDir.
func RunPeer(nodeDir, dataDir string, iterations int) (PeerResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(nodeDir, "peer.js"), dataDir, fmt.Sprint(iterations))
	cmd.Dir = nodeDir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return PeerResult{}, fmt.Errorf("node peer.js: %v\n%s", err, stderr.String())
	}
	var r PeerResult
	if err := json.Unmarshal(out, &r); err != nil {
		return PeerResult{}, fmt.Errorf("node peer.js said %q: %w", out, err)
	}
	return r, nil
}

// ParseNotificationOp is payfn's verify+decrypt alone (wxpay.Channel's
// ParseNotification: headers, window, signature, envelope, AES-GCM,
// Transaction), the part comparable with the peer.
func ParseNotificationOp(f *Fixture, ns []Notice) (func(i int) error, func(), error) {
	ch, err := f.Channel("", f.Keys)
	if err != nil {
		return nil, nil, err
	}
	ctx := context.Background()
	return func(i int) error {
		n := &ns[i%len(ns)]
		got, err := ch.ParseNotification(ctx, n.Header, n.Body)
		if err == nil && got.Transaction.TradeState != app.TradeStateSuccess {
			err = fmt.Errorf("trade state %q", got.Transaction.TradeState)
		}
		return err
	}, ch.Close, nil
}

// BenchNodePeer runs wechatpay-node-v3 on b.N of the same notifications
// payfn parses and reports its per-notification time as peer-ns/op. It
// skips only when node or npm is missing.
func BenchNodePeer(b *testing.B) {
	if !NodeAvailable() {
		b.Skip("node and npm are not installed")
	}
	nodeDir, err := EnsureNode()
	if err != nil {
		b.Fatal(err)
	}
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	ns, err := f.Notices(poolSize)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := WritePeerInputs(dir, f, ns); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	r, err := RunPeer(nodeDir, dir, b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.WallNsOp, "peer-ns/op")
	b.ReportMetric(r.CPUNsOp, "peer-cpu-ns/op")
}
