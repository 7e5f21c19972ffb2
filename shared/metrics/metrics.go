// Package metrics writes payfn's metrics as CloudWatch Embedded Metric
// Format (EMF) lines: one JSON object per line on the function's standard
// output, which CloudWatch Logs turns into metrics with no API call (on
// Lambda, stdout is the function's log stream). On Tencent SCF the same
// line reaches CLS as SCF_Message, where a key-value index makes its fields
// searchable and chartable.
//
// The specification:
// https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
// (emftest/emf.schema.json is written from it; emftest.Validate checks a line against it).
//
// An invocation's metrics are added up in a Collector that travels in its
// context and is written as one line when the invocation ends (Handler,
// Start and Flush): one line per invocation, however many orders a job
// touched, so the metrics cost one log line, not one per event. A line
// publishes each metric under the dimension sets [Service] (the whole
// deployment: what the alarms watch), [Service, Function] and, for a client
// app of service mode, [Service, Function, App]. A value recorded with no collector in its context is
// dropped; one recorded after its collector was flushed (a goroutine that
// outlived its request) is written at once on a line of its own.
//
// It uses the standard library only.
package metrics

import (
	"context"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultNamespace is the CloudWatch namespace of payfn's metrics.
const DefaultNamespace = "payfn"

// Dimension names.
const (
	DimService  = "Service"
	DimFunction = "Function"
	DimApp      = "App"
)

// MaxValues is the most values one metric carries on one line (the EMF
// limit for an array of values); a collector writes a line early when a
// metric reaches it.
const MaxValues = 100

// Unit is a CloudWatch unit.
type Unit string

// The units payfn's metrics use.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
	None         Unit = "None"
)

// UnitOf is the unit of a metric, from its name: "...Latency" is
// milliseconds, "...Fen" an amount of money in fen (no CloudWatch unit),
// anything else a count.
func UnitOf(name string) Unit {
	switch {
	case strings.HasSuffix(name, "Latency"):
		return Milliseconds
	case strings.HasSuffix(name, "Fen"):
		return None
	default:
		return Count
	}
}

// Options configure an Emitter.
type Options struct {
	// Namespace is the CloudWatch namespace; default DefaultNamespace.
	Namespace string
	// Service names the deployment (the Service dimension), so two
	// deployments in one account keep their metrics apart; default "payfn".
	Service string
	// Function is the Function dimension of collectors started without a
	// name of their own; default "payfn".
	Function string
	// RequestID, when set, names the invocation on its line (a property,
	// not a dimension), so a metric can be traced to its logs.
	RequestID func(context.Context) string
	// Now is the clock of the lines' timestamps; default time.Now.
	Now func() time.Time
}

// Emitter writes EMF lines to one writer, a whole line per Write.
type Emitter struct {
	mu   sync.Mutex
	w    io.Writer
	opts Options
}

// New returns an Emitter writing to w (the function's standard output).
func New(w io.Writer, opts Options) *Emitter {
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.Service == "" {
		opts.Service = "payfn"
	}
	if opts.Function == "" {
		opts.Function = "payfn"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Emitter{w: w, opts: opts}
}

type collectorKey struct{}

// Start returns ctx carrying a new collector for one invocation of the
// named function ("" for the emitter's default). Flush the collector when
// the invocation ends.
func (e *Emitter) Start(ctx context.Context, function string) (context.Context, *Collector) {
	if function == "" {
		function = e.opts.Function
	}
	c := &Collector{e: e, function: function}
	c.main.counts = c.countBuf[:0]
	c.main.values = c.seriesBuf[:0]
	c.sets = c.setBuf[:0]
	if e.opts.RequestID != nil {
		c.requestID = e.opts.RequestID(ctx)
	}
	return context.WithValue(ctx, collectorKey{}, c), c
}

// FromContext returns the collector ctx carries, or nil.
func FromContext(ctx context.Context) *Collector {
	c, _ := ctx.Value(collectorKey{}).(*Collector)
	return c
}

// Handler serves h with a collector in each request's context, flushed
// when h returns. function names the request's function ("" or a nil
// function: the emitter's default). The request id, when the emitter has
// RequestID, is the one the runtime adapter put in the request's context.
func (e *Emitter) Handler(h http.Handler, function func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := ""
		if function != nil {
			name = function(r)
		}
		ctx, c := e.Start(r.Context(), name)
		defer c.Flush()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Context is the app's metrics port over the collector in each call's
// context: it needs no emitter of its own, so the use cases can be built
// before any invocation starts. The zero value is ready to use.
type Context struct{}

// Count adds n to the named counter of ctx's collector, under app ("" for
// none).
func (Context) Count(ctx context.Context, app, name string, n int64) {
	if c := FromContext(ctx); c != nil {
		c.Count(app, name, n)
	}
}

// Observe records one value of the named metric in ctx's collector.
func (Context) Observe(ctx context.Context, app, name string, v float64) {
	if c := FromContext(ctx); c != nil {
		c.Observe(app, name, v)
	}
}

// Collector adds up one invocation's metrics until Flush. It is safe for
// concurrent use (a job works on several items at once).
type Collector struct {
	e         *Emitter
	function  string
	requestID string

	mu      sync.Mutex
	sets    []*set // one per app that recorded something, in order
	flushed bool

	// Room for a typical invocation, so that collecting allocates nothing
	// more than the collector: the first app's set, its counters and
	// series, and their first values.
	main      set
	setBuf    [1]*set
	countBuf  [4]counter
	seriesBuf [2]series
	valueBuf  [2][8]float64
}

// set is the metrics of one app ("" none) within an invocation, in the
// order they were first recorded.
type set struct {
	app    string
	counts []counter
	values []series
}

type counter struct {
	name string
	n    int64
}

type series struct {
	name string
	vs   []float64
}

func (c *Collector) setOf(app string) *set {
	for _, s := range c.sets {
		if s.app == app {
			return s
		}
	}
	var s *set
	if len(c.sets) == 0 {
		s = &c.main
		s.app = app
	} else {
		s = &set{app: app}
	}
	c.sets = append(c.sets, s)
	return s
}

// Count adds n to the named counter under app ("" for none).
func (c *Collector) Count(app, name string, n int64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flushed {
		c.write(&set{app: app, counts: []counter{{name, n}}})
		return
	}
	s := c.setOf(app)
	for i := range s.counts {
		if s.counts[i].name == name {
			s.counts[i].n += n
			return
		}
	}
	s.counts = append(s.counts, counter{name, n})
}

// Observe records one value of the named metric under app (a latency in
// milliseconds, say). Values that are not finite numbers are dropped.
func (c *Collector) Observe(app, name string, v float64) {
	if c == nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flushed {
		c.write(&set{app: app, values: []series{{name, []float64{v}}}})
		return
	}
	s := c.setOf(app)
	for i := range s.values {
		if s.values[i].name == name {
			s.values[i].vs = append(s.values[i].vs, v)
			if len(s.values[i].vs) == MaxValues {
				// A line may carry no more values of one metric: write
				// this one's now and start it again.
				c.write(&set{app: app, values: []series{s.values[i]}})
				s.values[i].vs = nil
			}
			return
		}
	}
	var vs []float64
	if s == &c.main && len(s.values) < len(c.valueBuf) {
		vs = c.valueBuf[len(s.values)][:0]
	}
	s.values = append(s.values, series{name, append(vs, v)})
}

// Flush writes what was collected, a line per app, and makes any later
// value a line of its own. Flushing again writes nothing more.
func (c *Collector) Flush() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flushed {
		return
	}
	c.flushed = true
	for _, s := range c.sets {
		c.write(s)
	}
	c.sets = nil
}

// lineBufs recycles the buffers lines are built in.
var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// write writes s as one line; the caller holds c.mu.
func (c *Collector) write(s *set) {
	bp := lineBufs.Get().(*[]byte)
	defer lineBufs.Put(bp)
	line := c.e.appendLine((*bp)[:0], c.function, c.requestID, s)
	if line == nil {
		return
	}
	*bp = line
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	c.e.w.Write(line) // a metric that cannot be written is not the invocation's failure
}

// appendLine appends s as an EMF line (with its newline), or returns nil
// when s holds nothing.
func (e *Emitter) appendLine(b []byte, function, requestID string, s *set) []byte {
	n := len(s.counts)
	for _, v := range s.values {
		if len(v.vs) > 0 {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	b = append(b, `{"_aws":{"Timestamp":`...)
	b = strconv.AppendInt(b, e.opts.Now().UnixMilli(), 10)
	b = append(b, `,"CloudWatchMetrics":[{"Namespace":`...)
	b = appendString(b, e.opts.Namespace)
	b = append(b, `,"Dimensions":[["Service"],["Service","Function"]`...)
	if s.app != "" {
		b = append(b, `,["Service","Function","App"]`...)
	}
	b = append(b, `],"Metrics":[`...)
	first := true
	def := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"Name":`...)
		b = appendString(b, name)
		b = append(b, `,"Unit":`...)
		b = appendString(b, string(UnitOf(name)))
		b = append(b, '}')
	}
	for _, k := range s.counts {
		def(k.name)
	}
	for _, v := range s.values {
		if len(v.vs) > 0 {
			def(v.name)
		}
	}
	b = append(b, `]}]},"Service":`...)
	b = appendString(b, e.opts.Service)
	b = append(b, `,"Function":`...)
	b = appendString(b, function)
	if s.app != "" {
		b = append(b, `,"App":`...)
		b = appendString(b, s.app)
	}
	if requestID != "" {
		b = append(b, `,"request_id":`...)
		b = appendString(b, requestID)
	}
	for _, k := range s.counts {
		b = append(b, ',')
		b = appendString(b, k.name)
		b = append(b, ':')
		b = strconv.AppendInt(b, k.n, 10)
	}
	for _, v := range s.values {
		if len(v.vs) == 0 {
			continue
		}
		b = append(b, ',')
		b = appendString(b, v.name)
		b = append(b, ":["...)
		for i, x := range v.vs {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, x, 'f', -1, 64)
		}
		b = append(b, ']')
	}
	return append(b, "}\n"...)
}

// appendString appends s as a JSON string. Control characters, quotes and
// backslashes are escaped; other bytes are copied (names and ids are
// ASCII).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '"' || ch == '\\':
			b = append(b, '\\', ch)
		case ch < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[ch>>4], hex[ch&0xf])
		default:
			b = append(b, ch)
		}
	}
	return append(b, '"')
}
