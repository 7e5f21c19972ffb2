package tencentscf

import (
	"bufio"
	"errors"
	"io"
	"math"

	"github.com/tencentyun/scf-go-lib/cloudfunction/messages"
)

// This file speaks the part of encoding/gob's wire format (`go doc
// encoding/gob`) that the SCF Go runtime's net/rpc client exchanges with a
// function. encoding/gob, with the reflection it builds codecs from, costs
// about 300 KB in every function binary; these few fixed messages need a
// small codec.
//
// Reading follows encoding/gob's decoder: the client defines each of its
// types (a wireType) before first using it on the connection, then sends
// values, which are matched to ours by field name. Fields we lack are
// skipped, so the runtime may send more fields than messages.InvokeRequest
// has, in any order; a field we have must come with the gob type ours
// decodes from (signed integers of any size are gob ints, unsigned ones
// gob uints, []byte is gob bytes, a struct any struct). Values of any defined type can be skipped, but for
// non-nil interface values, which nothing the runtime sends holds. Every
// length is checked against the bytes received and nesting is bounded, so
// a corrupt or hostile stream ends in an error, never a panic or a large
// allocation. Unlike encoding/gob, a field's type is checked when the field
// arrives rather than when its struct is defined, and a struct sharing no
// field with ours reads as an empty one rather than failing.
//
// Writing sends net/rpc's Response header and the bodies serveRPC answers
// with, preceded on first use by type definitions equal to encoding/gob's
// (gob_test.go compares the bytes).

// Limits on what one connection may make the decoder hold.
const (
	// gobMaxMessage bounds one message, far above the event sizes SCF
	// allows. A message is read as its bytes arrive, so its count alone
	// allocates at most gobReadChunk.
	gobMaxMessage = 64 << 20
	gobReadChunk  = 1 << 20
	// gobMaxTypeBytes bounds the type definitions one connection may send
	// (the runtime's take about 1 KB), and gobMaxTypes their number.
	gobMaxTypeBytes = 256 << 10
	gobMaxTypes     = 256
	// gobMaxDepth bounds the nesting of a value.
	gobMaxDepth = 100
)

// encoding/gob's predefined type ids; a stream defines ids from
// gobFirstUserID on.
const (
	gobBool        = 1
	gobInt         = 2
	gobUint        = 3
	gobFloat       = 4
	gobBytes       = 5
	gobString      = 6
	gobComplex     = 7
	gobInterface   = 8
	gobFirstUserID = 64
)

// gobKind is the wireType field that defined a type: ArrayT, SliceT,
// StructT, MapT, then GobEncoderT, BinaryMarshalerT and TextMarshalerT,
// whose values are sent as bytes.
type gobKind uint8

const (
	gobArrayKind gobKind = iota
	gobSliceKind
	gobStructKind
	gobMapKind
	gobEncodedKind
)

// gobKindFields is the number of fields of the struct each wireType field
// points to: arrayType{CommonType; Elem; Len}, sliceType{CommonType; Elem},
// structType{CommonType; Field}, mapType{CommonType; Key; Elem} and
// gobEncoderType{CommonType}.
var gobKindFields = [7]int{3, 2, 2, 3, 1, 1, 1}

// gobType is a type the peer defined: what matching or skipping its values
// needs.
type gobType struct {
	kind      gobKind
	elem, key int64
	len       uint64 // arrays
	fields    []gobField
}

type gobField struct {
	name string
	id   int64
}

// gobBuf reads one message. The first error sticks and empties the buffer,
// so every loop over its bytes ends.
type gobBuf struct {
	b   []byte
	err error
}

func (s *gobBuf) fail(msg string) {
	if s.err == nil {
		s.err = errors.New("gob: " + msg)
	}
	s.b = nil
}

// uint reads an unsigned integer: one byte below 0x80, else the negated byte
// count followed by that many big-endian bytes.
//
// It and appendUint are called from many places; inlined, they would add
// about 8 KB to every function binary.
//
//go:noinline
func (s *gobBuf) uint() uint64 {
	if len(s.b) == 0 {
		s.fail("unexpected end of message")
		return 0
	}
	n := 256 - int(s.b[0])
	if n > 128 {
		x := s.b[0]
		s.b = s.b[1:]
		return uint64(x)
	}
	if n > 8 || len(s.b) <= n {
		s.fail("bad unsigned integer")
		return 0
	}
	var x uint64
	for _, c := range s.b[1 : 1+n] {
		x = x<<8 | uint64(c)
	}
	s.b = s.b[1+n:]
	return x
}

// int reads a signed integer: the low bit of the unsigned form says whether
// the rest is complemented.
func (s *gobBuf) int() int64 {
	u := s.uint()
	if u&1 != 0 {
		return ^int64(u >> 1)
	}
	return int64(u >> 1)
}

// count reads a count of bytes or elements, which cannot exceed the bytes
// left: an element takes at least one.
func (s *gobBuf) count() uint64 {
	n := s.uint()
	if n > uint64(len(s.b)) {
		s.fail("count exceeds the message")
		return 0
	}
	return n
}

// bytes reads a count and that many bytes, which stay in the message buffer.
func (s *gobBuf) bytes() []byte {
	n := s.count()
	v := s.b[:n:n]
	s.b = s.b[n:]
	return v
}

// field advances *f to the next field present of a struct with n fields and
// reports whether there is one. A struct is (field number delta, value)
// pairs up to a zero delta or, as encoding/gob allows, the message's end.
func (s *gobBuf) field(f *int, n int) bool {
	if len(s.b) == 0 {
		return false
	}
	delta := s.uint()
	if delta == 0 {
		return false
	}
	if delta > uint64(n-1-*f) {
		s.fail("field number out of range")
		return false
	}
	*f += int(delta)
	return true
}

// typed checks that field f has the gob type want.
func (s *gobBuf) typed(f gobField, want int64) bool {
	if f.id != want {
		s.fail("wrong type for received field " + f.name)
		return false
	}
	return true
}

// gobDecoder reads what a net/rpc client sends over one connection.
type gobDecoder struct {
	r         io.Reader
	types     map[int64]*gobType
	typeBytes int // left of gobMaxTypeBytes
	count     [8]byte
}

func newGobDecoder(r io.Reader) *gobDecoder {
	return &gobDecoder{r: r, types: map[int64]*gobType{}, typeBytes: gobMaxTypeBytes}
}

// readMessage reads one message: a byte count, then the bytes. It returns
// io.EOF only when the stream ends before the count.
func (d *gobDecoder) readMessage() ([]byte, error) {
	if _, err := io.ReadFull(d.r, d.count[:1]); err != nil {
		return nil, err
	}
	n := uint64(d.count[0])
	if w := 256 - int(n); w <= 8 {
		if _, err := io.ReadFull(d.r, d.count[:w]); err != nil {
			return nil, unexpectedEOF(err)
		}
		n = 0
		for _, c := range d.count[:w] {
			n = n<<8 | uint64(c)
		}
	} else if w <= 128 {
		return nil, errors.New("gob: bad message length")
	}
	if n > gobMaxMessage {
		return nil, errors.New("gob: message too large")
	}
	msg := make([]byte, 0, min(n, gobReadChunk))
	for uint64(len(msg)) < n {
		k := min(n-uint64(len(msg)), gobReadChunk)
		msg = append(msg, make([]byte, k)...)
		if _, err := io.ReadFull(d.r, msg[uint64(len(msg))-k:]); err != nil {
			return nil, unexpectedEOF(err)
		}
	}
	return msg, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// next reads messages up to a value, recording the type definitions before
// it, and returns the value's type and bytes. It returns io.EOF only when
// the stream ends cleanly before the first message.
func (d *gobDecoder) next() (int64, *gobBuf, error) {
	first := true
	for {
		msg, err := d.readMessage()
		if err != nil {
			if err == io.EOF && !first {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
		if len(msg) == 0 {
			continue // as encoding/gob does
		}
		s := &gobBuf{b: msg}
		id := s.int()
		if s.err != nil {
			return 0, nil, s.err
		}
		if id >= 0 {
			return id, s, nil
		}
		if err := d.define(-id, s); err != nil {
			return 0, nil, err
		}
		first = false
	}
}

// define records the type definition (a wireType) in s as type id.
func (d *gobDecoder) define(id int64, s *gobBuf) error {
	switch {
	case id < gobFirstUserID || d.types[id] != nil:
		return errors.New("gob: duplicate type received")
	case len(d.types) >= gobMaxTypes || len(s.b) > d.typeBytes:
		return errors.New("gob: too many type definitions")
	}
	d.typeBytes -= len(s.b)
	t := &gobType{}
	kinds := 0
	for f := -1; s.field(&f, len(gobKindFields)); kinds++ {
		t.kind = min(gobKind(f), gobEncodedKind)
		for g := -1; s.field(&g, gobKindFields[f]); {
			switch {
			case g == 0: // CommonType{Name string; Id typeId}, not needed
				for h := -1; s.field(&h, 2); {
					if h == 0 {
						s.bytes()
					} else {
						s.int()
					}
				}
			case t.kind == gobStructKind: // Field []fieldType
				t.fields = make([]gobField, s.count())
				for i := range t.fields {
					if len(s.b) == 0 {
						s.fail("unexpected end of message")
					}
					for h := -1; s.field(&h, 2); { // fieldType{Name string; Id typeId}
						if h == 0 {
							t.fields[i].name = string(s.bytes())
						} else {
							t.fields[i].id = s.int()
						}
					}
				}
			case t.kind == gobMapKind && g == 1:
				t.key = s.int()
			case t.kind == gobArrayKind && g == 2:
				if n := s.int(); n >= 0 {
					t.len = uint64(n)
				} else {
					s.fail("negative array length")
				}
			default: // Elem typeId
				t.elem = s.int()
			}
		}
	}
	switch {
	case s.err != nil:
		return s.err
	case kinds != 1:
		return errors.New("gob: bad type definition")
	case len(s.b) > 0:
		return errors.New("gob: extra data in buffer")
	}
	d.types[id] = t
	return nil
}

// skip reads past a value of type id.
func (d *gobDecoder) skip(s *gobBuf, id int64, depth int) {
	if depth > gobMaxDepth {
		s.fail("value nested too deeply")
		return
	}
	switch id {
	case gobBool, gobInt, gobUint, gobFloat:
		s.uint()
		return
	case gobComplex:
		s.uint()
		s.uint()
		return
	case gobBytes, gobString:
		s.bytes()
		return
	case gobInterface:
		// A nil interface is an empty name; a value would bring its own
		// type definitions and a nested message.
		if len(s.bytes()) > 0 {
			s.fail("interface values are not supported")
		}
		return
	}
	t := d.types[id]
	if t == nil {
		s.fail("unknown type id")
		return
	}
	switch t.kind {
	case gobStructKind:
		for f := -1; s.field(&f, len(t.fields)); {
			d.skip(s, t.fields[f].id, depth+1)
		}
	case gobEncodedKind:
		s.bytes()
	default:
		n := s.count()
		if t.kind == gobArrayKind && n != t.len {
			s.fail("array length mismatch")
		}
		for ; n > 0 && len(s.b) > 0; n-- {
			if t.kind == gobMapKind {
				d.skip(s, t.key, depth+1)
			}
			d.skip(s, t.elem, depth+1)
		}
		if n > 0 {
			s.fail("unexpected end of message")
		}
	}
}

// discard reads past the next value, whatever its type, as encoding/gob's
// Decoder.DecodeValue does given no value.
func (d *gobDecoder) discard() error {
	id, s, err := d.next()
	if err != nil {
		return err
	}
	// A value other than a struct is sent as a singleton: a zero field
	// delta, then the value.
	if t := d.types[id]; (t == nil || t.kind != gobStructKind) && s.uint() != 0 {
		s.fail("corrupted data: non-zero delta for singleton")
	}
	d.skip(s, id, 0)
	return s.err
}

// nextStruct reads the next value, which must be a struct, and returns its
// bytes and type, for the caller to read field by field. name is the Go
// type it decodes into, for the error.
func (d *gobDecoder) nextStruct(name string) (*gobBuf, *gobType, error) {
	id, s, err := d.next()
	if err != nil {
		return nil, nil, err
	}
	t := d.types[id]
	if t == nil || t.kind != gobStructKind {
		return nil, nil, errors.New("gob: type mismatch: " + name + " is a struct, the value is not")
	}
	return s, t, nil
}

// str, bytesField, uint64Field, int64Field and int32Field read the value of
// field f, which must have the matching gob type.

func (s *gobBuf) str(f gobField) string {
	if !s.typed(f, gobString) {
		return ""
	}
	return string(s.bytes())
}

func (s *gobBuf) bytesField(f gobField) []byte {
	if !s.typed(f, gobBytes) {
		return nil
	}
	// The message buffer is never reused: the bytes stay in it.
	if b := s.bytes(); len(b) > 0 {
		return b
	}
	return nil
}

func (s *gobBuf) uint64Field(f gobField) uint64 {
	if !s.typed(f, gobUint) {
		return 0
	}
	return s.uint()
}

func (s *gobBuf) int64Field(f gobField) int64 {
	if !s.typed(f, gobInt) {
		return 0
	}
	return s.int()
}

func (s *gobBuf) int32Field(f gobField) int32 {
	v := s.int64Field(f)
	if v < math.MinInt32 || v > math.MaxInt32 {
		s.fail("value for " + f.name + " out of range")
		return 0
	}
	return int32(v)
}

// readRequestHeader reads net/rpc's Request header.
func (d *gobDecoder) readRequestHeader(h *rpcRequest) error {
	s, t, err := d.nextStruct("Request")
	if err != nil {
		return err
	}
	for f := -1; s.field(&f, len(t.fields)); {
		switch field := t.fields[f]; field.name {
		case "ServiceMethod":
			h.ServiceMethod = s.str(field)
		case "Seq":
			h.Seq = s.uint64Field(field)
		default:
			d.skip(s, field.id, 1)
		}
	}
	return s.err
}

// readPing reads a messages.PingRequest, which has no fields.
func (d *gobDecoder) readPing() error {
	s, t, err := d.nextStruct("PingRequest")
	if err != nil {
		return err
	}
	for f := -1; s.field(&f, len(t.fields)); {
		d.skip(s, t.fields[f].id, 1)
	}
	return s.err
}

// readInvoke reads a messages.InvokeRequest.
func (d *gobDecoder) readInvoke(req *messages.InvokeRequest) error {
	s, t, err := d.nextStruct("InvokeRequest")
	if err != nil {
		return err
	}
	for f := -1; s.field(&f, len(t.fields)); {
		switch field := t.fields[f]; field.name {
		case "Payload":
			req.Payload = s.bytesField(field)
		case "RequestId":
			req.RequestId = s.str(field)
		case "TraceId":
			req.TraceId = s.str(field)
		case "Deadline":
			dt := d.types[field.id]
			if dt == nil || dt.kind != gobStructKind {
				s.fail("wrong type for received field Deadline")
				break
			}
			for g := -1; s.field(&g, len(dt.fields)); {
				switch field := dt.fields[g]; field.name {
				case "Seconds":
					req.Deadline.Seconds = s.int64Field(field)
				case "Nanos":
					req.Deadline.Nanos = s.int64Field(field)
				default:
					d.skip(s, field.id, 2)
				}
			}
		case "InvokedFunctionUnique":
			req.InvokedFunctionUnique = s.str(field)
		case "ClientContext":
			req.ClientContext = s.bytesField(field)
		case "Namespace":
			req.Namespace = s.str(field)
		case "FunctionName":
			req.FunctionName = s.str(field)
		case "FunctionVersion":
			req.FunctionVersion = s.str(field)
		case "MemoryLimitInMb":
			req.MemoryLimitInMb = s.int32Field(field)
		case "TimeLimitInMs":
			req.TimeLimitInMs = s.int32Field(field)
		case "Environment":
			req.Environment = s.str(field)
		case "TencentcloudRegion":
			req.TencentcloudRegion = s.str(field)
		case "TencentcloudAppID":
			req.TencentcloudAppID = s.str(field)
		case "TencentcloudUin":
			req.TencentcloudUin = s.str(field)
		case "FunctionTrace":
			req.FunctionTrace = s.str(field)
		default:
			d.skip(s, field.id, 1)
		}
	}
	return s.err
}

// The type ids this side sends. encoding/gob numbers types in the order a
// process first encodes them; these are the ids a fresh process gives
// net/rpc's Response, struct{}, PingResponse and InvokeResponse, encoded in
// that order (InvokeResponse's fields number the next three).
const (
	gobResponseID   = 64
	gobEmptyID      = 65
	gobPingID       = 66
	gobInvokeID     = 67
	gobErrorID      = 68 // InvokeResponse_Error
	gobFrameID      = 69 // InvokeResponse_Error_StackFrame
	gobFrameSliceID = 70 // []*InvokeResponse_Error_StackFrame
)

// The messages defining those types, as encoding/gob sends them: each a
// byte count, the negated id and a wireType{StructT or SliceT:
// {CommonType{Name, Id}, Field []{Name, Id} or Elem}}.
const (
	gobResponseDef = "9\x7f\x03\x01\x01\x08Response\x01\xff\x80\x00" +
		"\x01\x03\x01\x0dServiceMethod\x01\x0c\x00\x01\x03Seq\x01\x06\x00\x01\x05Error\x01\x0c\x00\x00\x00"
	gobEmptyDef = "\x0a\xff\x81\x03\x01\x02\xff\x82\x00\x00\x00" // unnamed, no fields
	gobPingDef  = "\x18\xff\x83\x03\x01\x01\x0cPingResponse\x01\xff\x84\x00\x00\x00"
	// InvokeResponse's definition is followed by its fields' types', depth
	// first. The stack frame struct, first met through the slice's
	// pointer element, is unnamed.
	gobInvokeDef = "3\xff\x85\x03\x01\x01\x0eInvokeResponse\x01\xff\x86\x00" +
		"\x01\x02\x01\x07Payload\x01\x0a\x00\x01\x05Error\x01\xff\x88\x00\x00\x00" +
		"V\xff\x87\x03\x01\x01\x14InvokeResponse_Error\x01\xff\x88\x00" +
		"\x01\x04\x01\x07Message\x01\x0c\x00\x01\x04Type\x01\x0c\x00\x01\x0aStackTrace\x01\xff\x8c\x00\x01\x0aShouldExit\x01\x02\x00\x00\x00" +
		":\xff\x8b\x02\x01\x01+[]*messages.InvokeResponse_Error_StackFrame\x01\xff\x8c\x00\x01\xff\x8a\x00\x00" +
		"(\xff\x89\x03\x01\x02\xff\x8a\x00" +
		"\x01\x03\x01\x04Path\x01\x0c\x00\x01\x04Line\x01\x04\x00\x01\x05Label\x01\x0c\x00\x00\x00"
)

// gobEncoder writes net/rpc responses over one connection.
type gobEncoder struct {
	w *bufio.Writer
	// sent records which of the definitions above were sent: the
	// header's, struct{}'s, PingResponse's, InvokeResponse's.
	sent [4]bool
	msg  gobMsg
}

// encode writes h, then its body (struct{}{}, *messages.PingResponse or
// *messages.InvokeResponse), each preceded by its type's definition on first
// use, and flushes.
func (e *gobEncoder) encode(h rpcResponse, body any) error {
	e.define(0, gobResponseDef)
	m := e.msg.start(gobResponseID)
	m.string(0, h.ServiceMethod)
	m.uint(1, h.Seq)
	m.string(2, h.Error)
	m.end()
	e.w.Write(m.bytes())

	switch body := body.(type) {
	case struct{}:
		e.define(1, gobEmptyDef)
		e.msg.start(gobEmptyID).end()
	case *messages.PingResponse:
		e.define(2, gobPingDef)
		e.msg.start(gobPingID).end()
	case *messages.InvokeResponse:
		e.define(3, gobInvokeDef)
		if err := e.msg.start(gobInvokeID).invokeResponse(body); err != nil {
			return err
		}
	default:
		return errors.New("gob: cannot encode the body")
	}
	e.w.Write(e.msg.bytes())
	err := e.w.Flush() // write errors stick to e.w until here
	if cap(e.msg.b) > 1<<20 {
		e.msg.b = nil // keep no large payload's buffer
	}
	return err
}

func (e *gobEncoder) define(i int, def string) {
	if !e.sent[i] {
		e.w.WriteString(def)
		e.sent[i] = true
	}
}

// gobMsg builds one message, leaving room for its byte count before it;
// last is the field number written last in the struct being written.
type gobMsg struct {
	b    []byte
	last int
}

const gobCountRoom = 9

func (m *gobMsg) start(id int64) *gobMsg {
	if cap(m.b) < gobCountRoom {
		m.b = make([]byte, gobCountRoom, 512)
	}
	m.b = m.b[:gobCountRoom]
	m.appendInt(id)
	m.last = -1
	return m
}

// bytes fills in the count and returns the message.
func (m *gobMsg) bytes() []byte {
	var c gobMsg
	c.b = make([]byte, 0, gobCountRoom)
	c.appendUint(uint64(len(m.b) - gobCountRoom))
	i := gobCountRoom - len(c.b)
	copy(m.b[i:], c.b)
	return m.b[i:]
}

// appendUint is not inlined: see gobBuf.uint.
//
//go:noinline
func (m *gobMsg) appendUint(x uint64) {
	if x < 0x80 {
		m.b = append(m.b, byte(x))
		return
	}
	n := 0
	for y := x; y > 0; y >>= 8 {
		n++
	}
	m.b = append(m.b, byte(256-n))
	for i := n - 1; i >= 0; i-- {
		m.b = append(m.b, byte(x>>(8*i)))
	}
}

func (m *gobMsg) appendInt(i int64) {
	if i < 0 {
		m.appendUint(uint64(^i)<<1 | 1)
	} else {
		m.appendUint(uint64(i) << 1)
	}
}

// delta starts field i of the current struct.
func (m *gobMsg) delta(i int) {
	m.appendUint(uint64(i - m.last))
	m.last = i
}

// string, uint and int write field i unless it is zero, as encoding/gob
// leaves zero fields out.

func (m *gobMsg) string(i int, s string) {
	if s != "" {
		m.delta(i)
		m.appendUint(uint64(len(s)))
		m.b = append(m.b, s...)
	}
}

func (m *gobMsg) uint(i int, x uint64) {
	if x != 0 {
		m.delta(i)
		m.appendUint(x)
	}
}

func (m *gobMsg) int(i int, x int64) {
	if x != 0 {
		m.delta(i)
		m.appendInt(x)
	}
}

// end ends the current struct.
func (m *gobMsg) end() {
	m.b = append(m.b, 0)
}

func (m *gobMsg) invokeResponse(r *messages.InvokeResponse) error {
	if len(r.Payload) > 0 {
		m.delta(0)
		m.appendUint(uint64(len(r.Payload)))
		m.b = append(m.b, r.Payload...)
	}
	if e := r.Error; e != nil {
		m.delta(1)
		m.last = -1
		m.string(0, e.Message)
		m.string(1, e.Type)
		if len(e.StackTrace) > 0 {
			m.uint(2, uint64(len(e.StackTrace)))
			for _, f := range e.StackTrace {
				if f == nil {
					return errors.New("gob: encodeArray: nil element")
				}
				m.last = -1
				m.string(0, f.Path)
				m.int(1, int64(f.Line))
				m.string(2, f.Label)
				m.end()
			}
			m.last = 2
		}
		if e.ShouldExit {
			m.uint(3, 1)
		}
		m.end()
	}
	m.end()
	return nil
}
