package alipay

import (
	"bufio"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// A ZIP archive read front to back as it downloads, without archive/zip
// (which wants an io.ReaderAt, so the whole file, and costs the function
// binaries about 57 KB): each local file header, its data (stored, or
// deflated through compress/flate, which the binaries link anyway), its
// data descriptor, then the central directory, which must list exactly the
// entries read, and the end record. Every entry's CRC-32 and sizes are
// checked, so a cut or altered download fails. Only what Alipay's bill
// archives need is accepted: no encryption, no ZIP64, no method but
// stored and deflate, a bounded number and size of entries.

// ZIP record signatures and flags.
const (
	sigLocal      = 0x04034b50
	sigDescriptor = 0x08074b50
	sigCentral    = 0x02014b50
	sigEnd        = 0x06054b50
	sigEnd64      = 0x06064b50

	flagEncrypted   = 1 << 0
	flagDescriptor  = 1 << 3
	flagStrongCrypt = 1 << 6
	flagMaskedDir   = 1 << 13

	methodStored  = 0
	methodDeflate = 8
)

// Bounds of an archive payfn reads.
const (
	maxZipEntries   = 16
	maxZipName      = 1024
	maxZipExtra     = 4096
	maxZipComment   = 4096
	maxZipEntrySize = 1 << 30 // uncompressed bytes of one entry (a bill of 100,000 rows is about 25 MB)
)

// errZip wraps every way an archive is refused.
var errZip = errors.New("zip")

func zipErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errZip, fmt.Sprintf(format, args...))
}

// zipReader reads an archive from r entry by entry.
type zipReader struct {
	r       *countReader
	entries []zipEntry
	cur     *zipEntryReader
	done    bool
}

type zipEntry struct {
	name         string
	method       uint16
	crc          uint32
	csize, usize uint32
	offset       uint32
}

// countReader counts the bytes read through it. It is an io.ByteReader, so
// flate reads exactly the compressed bytes and no further.
type countReader struct {
	br *bufio.Reader
	n  int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.br.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countReader) ReadByte() (byte, error) {
	b, err := c.br.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *countReader) full(p []byte) error {
	if _, err := io.ReadFull(c, p); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return zipErr("the archive ends early")
		}
		return err
	}
	return nil
}

func newZipReader(r io.Reader) *zipReader {
	return &zipReader{r: &countReader{br: bufio.NewReaderSize(r, 64<<10)}}
}

// next returns the next entry's name and content. The content reader
// returns io.EOF only once the entry's CRC-32 and sizes matched. After the
// last entry, next checks the central directory and the end record and
// returns io.EOF. An entry not read to its end is skipped (and checked).
func (z *zipReader) next() (string, io.Reader, error) {
	if z.done {
		return "", nil, io.EOF
	}
	if z.cur != nil {
		if _, err := io.Copy(io.Discard, z.cur); err != nil {
			return "", nil, err
		}
		z.cur = nil
	}
	offset := z.r.n
	var sig [4]byte
	if err := z.r.full(sig[:]); err != nil {
		return "", nil, err
	}
	switch binary.LittleEndian.Uint32(sig[:]) {
	case sigLocal:
	case sigCentral:
		if err := z.directory(offset); err != nil {
			return "", nil, err
		}
		z.done = true
		return "", nil, io.EOF
	default:
		return "", nil, zipErr("no local file header at offset %d", offset)
	}
	if len(z.entries) == maxZipEntries {
		return "", nil, zipErr("more than %d entries", maxZipEntries)
	}
	var h [26]byte
	if err := z.r.full(h[:]); err != nil {
		return "", nil, err
	}
	flags, method := binary.LittleEndian.Uint16(h[2:]), binary.LittleEndian.Uint16(h[4:])
	e := zipEntry{method: method, crc: binary.LittleEndian.Uint32(h[10:]), csize: binary.LittleEndian.Uint32(h[14:]),
		usize: binary.LittleEndian.Uint32(h[18:]), offset: uint32(offset)}
	nameLen, extraLen := int(binary.LittleEndian.Uint16(h[22:])), int(binary.LittleEndian.Uint16(h[24:]))
	switch {
	case flags&(flagEncrypted|flagStrongCrypt|flagMaskedDir) != 0:
		return "", nil, zipErr("an encrypted entry")
	case method != methodStored && method != methodDeflate:
		return "", nil, zipErr("compression method %d", method)
	case method == methodStored && flags&flagDescriptor != 0:
		return "", nil, zipErr("a stored entry without its size")
	case e.csize == 0xffffffff || e.usize == 0xffffffff || offset > 0xfffffffe:
		return "", nil, zipErr("a ZIP64 entry")
	case nameLen > maxZipName || extraLen > maxZipExtra:
		return "", nil, zipErr("an entry name or extra field too long")
	}
	buf := make([]byte, nameLen+extraLen)
	if err := z.r.full(buf); err != nil {
		return "", nil, err
	}
	if err := checkExtra(buf[nameLen:]); err != nil {
		return "", nil, err
	}
	e.name = string(buf[:nameLen])
	er := &zipEntryReader{z: z, e: e, descriptor: flags&flagDescriptor != 0, start: z.r.n}
	if method == methodDeflate {
		er.data = flate.NewReader(z.r)
	} else {
		er.data = io.LimitReader(z.r, int64(e.csize))
	}
	z.cur = er
	return e.name, er, nil
}

// checkExtra refuses the ZIP64 extra field.
func checkExtra(b []byte) error {
	for len(b) >= 4 {
		id, n := binary.LittleEndian.Uint16(b), int(binary.LittleEndian.Uint16(b[2:]))
		if id == 0x0001 {
			return zipErr("a ZIP64 entry")
		}
		if len(b) < 4+n {
			return zipErr("a malformed extra field")
		}
		b = b[4+n:]
	}
	return nil
}

// zipEntryReader yields one entry's content, checking it at its end.
type zipEntryReader struct {
	z          *zipReader
	e          zipEntry
	descriptor bool
	data       io.Reader
	crc        uint32
	start      int64 // where the compressed data begins
	n          int64 // uncompressed bytes so far
	err        error // sticky; io.EOF once checked
}

func (r *zipEntryReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.data.Read(p)
	r.n += int64(n)
	r.crc = crc32.Update(r.crc, crc32.IEEETable, p[:n])
	switch {
	case r.n > maxZipEntrySize:
		err = zipErr("entry %q is larger than %d bytes", r.e.name, maxZipEntrySize)
	case err == io.EOF:
		err = r.finish()
	case err == io.ErrUnexpectedEOF:
		err = zipErr("entry %q ends early", r.e.name)
	case err != nil && !errors.Is(err, errZip):
		var ce flate.CorruptInputError
		if errors.As(err, &ce) {
			err = zipErr("entry %q: %v", r.e.name, err)
		}
	}
	if err != nil {
		r.err = err
	}
	return n, err
}

// finish reads the data descriptor, if any, and checks the CRC-32 and the
// sizes; it returns io.EOF when they match.
func (r *zipEntryReader) finish() error {
	csize := r.z.r.n - r.start
	if r.descriptor {
		var d [16]byte
		if err := r.z.r.full(d[:12]); err != nil {
			return err
		}
		b := d[:12]
		if binary.LittleEndian.Uint32(d[:]) == sigDescriptor {
			if err := r.z.r.full(d[12:]); err != nil {
				return err
			}
			b = d[4:]
		}
		crc, cs, us := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
		// The local header's fields are zero; a writer that filled them
		// in must agree with itself.
		if (r.e.crc != 0 || r.e.csize != 0 || r.e.usize != 0) && (r.e.crc != crc || r.e.csize != cs || r.e.usize != us) {
			return zipErr("entry %q: the data descriptor disagrees with the local header", r.e.name)
		}
		r.e.crc, r.e.csize, r.e.usize = crc, cs, us
	}
	switch {
	case r.crc != r.e.crc:
		return zipErr("entry %q: CRC-32 %08x, the archive says %08x", r.e.name, r.crc, r.e.crc)
	case int64(r.e.usize) != r.n || int64(r.e.csize) != csize:
		return zipErr("entry %q: %d bytes (%d compressed), the archive says %d (%d)", r.e.name, r.n, csize, r.e.usize, r.e.csize)
	}
	r.z.entries = append(r.z.entries, r.e)
	return io.EOF
}

// directory reads the central directory (its signature at offset already
// read) and the end record, which must describe exactly the entries read,
// and then the end of the file.
func (z *zipReader) directory(offset int64) error {
	for i := 0; ; i++ {
		if i > 0 {
			var sig [4]byte
			if err := z.r.full(sig[:]); err != nil {
				return err
			}
			switch binary.LittleEndian.Uint32(sig[:]) {
			case sigCentral:
			case sigEnd:
				return z.end(offset, i)
			case sigEnd64:
				return zipErr("a ZIP64 archive")
			default:
				return zipErr("a malformed central directory")
			}
		}
		var h [42]byte
		if err := z.r.full(h[:]); err != nil {
			return err
		}
		if i >= len(z.entries) {
			return zipErr("the central directory lists more entries than the archive holds")
		}
		e := z.entries[i]
		nameLen, extraLen, commentLen := int(binary.LittleEndian.Uint16(h[24:])), int(binary.LittleEndian.Uint16(h[26:])), int(binary.LittleEndian.Uint16(h[28:]))
		if nameLen > maxZipName || extraLen > maxZipExtra || commentLen > maxZipComment {
			return zipErr("a central directory record too long")
		}
		buf := make([]byte, nameLen+extraLen+commentLen)
		if err := z.r.full(buf); err != nil {
			return err
		}
		if binary.LittleEndian.Uint16(h[6:]) != e.method || binary.LittleEndian.Uint32(h[12:]) != e.crc ||
			binary.LittleEndian.Uint32(h[16:]) != e.csize || binary.LittleEndian.Uint32(h[20:]) != e.usize ||
			binary.LittleEndian.Uint32(h[38:]) != e.offset || string(buf[:nameLen]) != e.name {
			return zipErr("the central directory disagrees with entry %d", i)
		}
		if err := checkExtra(buf[nameLen : nameLen+extraLen]); err != nil {
			return err
		}
	}
}

func (z *zipReader) end(dirOffset int64, listed int) error {
	dirSize := z.r.n - 4 - dirOffset
	var h [18]byte
	if err := z.r.full(h[:]); err != nil {
		return err
	}
	total := int(binary.LittleEndian.Uint16(h[6:]))
	size, offset := binary.LittleEndian.Uint32(h[8:]), binary.LittleEndian.Uint32(h[12:])
	switch {
	case listed != len(z.entries) || total != len(z.entries) || int(binary.LittleEndian.Uint16(h[4:])) != total:
		return zipErr("the end record lists %d entries, the archive holds %d", total, len(z.entries))
	case int64(size) != dirSize || int64(offset) != dirOffset:
		return zipErr("the end record places the central directory elsewhere")
	case binary.LittleEndian.Uint16(h[0:]) != 0 || binary.LittleEndian.Uint16(h[2:]) != 0:
		return zipErr("a multi-disk archive")
	}
	comment := int(binary.LittleEndian.Uint16(h[16:]))
	if _, err := io.CopyN(io.Discard, z.r, int64(comment)); err != nil {
		return zipErr("the archive ends early")
	}
	if n, _ := io.CopyN(io.Discard, z.r, 1); n != 0 {
		return zipErr("bytes after the end record")
	}
	return nil
}
