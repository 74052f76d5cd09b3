package smtp

// Tests for flowgate's patch (see FLOWGATE-PATCH.md): the bulk paths of
// dataReader.Read and lineLimitReader.Read must behave exactly like
// upstream v0.25.1's byte-at-a-time loops, which are kept below as the
// reference. Every input is read through both, with the same buffer sizes
// and the same chunking of the underlying stream, and everything must
// match: the bytes handed to the session, the error, what the limited
// reader has left, and the bytes left unread after the end marker (the
// next pipelined command).

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
)

// upstreamDataRead is dataReader.Read as in go-smtp v0.25.1.
func upstreamDataRead(r *dataReader, b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}
	const (
		stateBeginLine = iota
		stateDot
		stateDotCR
		stateCR
		stateData
		stateEOF
	)
	for n < len(b) && r.state != stateEOF {
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state = stateDotCR
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state = stateEOF
				continue
			}
			r.state = stateData
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			r.state = stateData
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}
	if r.limited {
		r.n -= int64(n)
	}
	return
}

// upstreamLineLimitRead is lineLimitReader.Read as in go-smtp v0.25.1.
func upstreamLineLimitRead(r *lineLimitReader, b []byte) (int, error) {
	if r.curLineLength > r.LineLimit && r.LineLimit > 0 {
		return 0, ErrTooLongLine
	}
	n, err := r.R.Read(b)
	if err != nil {
		return n, err
	}
	if r.LineLimit == 0 {
		return n, nil
	}
	for _, chr := range b[:n] {
		if chr == '\n' {
			r.curLineLength = 0
		}
		r.curLineLength++
		if r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine
		}
	}
	return n, nil
}

// chunkedReader returns its data in the chunk sizes it is given, as a
// socket would.
type chunkedReader struct {
	data   []byte
	chunks []int
}

func (c *chunkedReader) Read(b []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.chunks) > 0 {
		n = c.chunks[0]
		c.chunks = c.chunks[1:]
	}
	if n > len(b) {
		n = len(b)
	}
	if n > len(c.data) {
		n = len(c.data)
	}
	copy(b, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// lineLimitAdapter lets the same stack run with either line-limit reader.
type lineLimitAdapter struct {
	llr      *lineLimitReader
	upstream bool
}

func (a lineLimitAdapter) Read(b []byte) (int, error) {
	if a.upstream {
		return upstreamLineLimitRead(a.llr, b)
	}
	return a.llr.Read(b)
}

type readCase struct {
	input      []byte
	chunks     []int // underlying read sizes
	readSizes  []int // sizes of the session's Read calls
	bufSize    int   // bufio.Reader size (16 is bufio's minimum)
	lineLimit  int
	maxMessage int64
}

type readResult struct {
	out       []byte
	err       error
	reads     []int
	remaining int64
	leftover  []byte
}

// run reads c through a go-smtp-like stack: socket → line limit → bufio →
// data reader, and then what the server reads next.
func (c readCase) run(upstream bool) readResult {
	chunks := append([]int(nil), c.chunks...)
	llr := &lineLimitReader{R: &chunkedReader{data: c.input, chunks: chunks}, LineLimit: c.lineLimit}
	br := bufio.NewReaderSize(lineLimitAdapter{llr: llr, upstream: upstream}, c.bufSize)
	dr := &dataReader{r: br}
	if c.maxMessage > 0 {
		dr.limited, dr.n = true, c.maxMessage
	}
	var res readResult
	for i := 0; i < 10*len(c.input)+10; i++ {
		size := c.readSizes[i%len(c.readSizes)]
		b := make([]byte, size)
		var n int
		var err error
		if upstream {
			n, err = upstreamDataRead(dr, b)
		} else {
			n, err = dr.Read(b)
		}
		res.reads = append(res.reads, n)
		res.out = append(res.out, b[:n]...)
		if err != nil {
			res.err = err
			break
		}
	}
	res.remaining = dr.n
	res.leftover, _ = io.ReadAll(br)
	return res
}

func (c readCase) check(t *testing.T) {
	t.Helper()
	want, got := c.run(true), c.run(false)
	if !bytes.Equal(want.out, got.out) || !errors.Is(got.err, want.err) || !errors.Is(want.err, got.err) ||
		want.remaining != got.remaining || !bytes.Equal(want.leftover, got.leftover) ||
		len(want.reads) != len(got.reads) {
		t.Fatalf("patched reader differs from upstream for %q (chunks %v, reads %v, bufio %d, line limit %d, max %d):\n upstream: out %q err %v reads %v remaining %d leftover %q\n  patched: out %q err %v reads %v remaining %d leftover %q",
			c.input, c.chunks, c.readSizes, c.bufSize, c.lineLimit, c.maxMessage,
			want.out, want.err, want.reads, want.remaining, want.leftover,
			got.out, got.err, got.reads, got.remaining, got.leftover)
	}
	for i := range want.reads {
		if want.reads[i] != got.reads[i] {
			t.Fatalf("read %d of %q returned %d bytes upstream and %d patched", i, c.input, want.reads[i], got.reads[i])
		}
	}
}

var patchPieces = []string{".", "..", "\r", "\n", "\r\n", ".\r\n", "\r\n.\r\n", "a", "text", "La de da de da 1.", "\x00", "\xff"}

func randomCase(rng *rand.Rand) readCase {
	var in []byte
	for n := rng.Intn(40); n > 0; n-- {
		in = append(in, patchPieces[rng.Intn(len(patchPieces))]...)
	}
	if rng.Intn(3) > 0 { // usually a proper end marker and a next command
		in = append(in, "\r\n.\r\nQUIT\r\n"...)
	}
	c := readCase{input: in, bufSize: 16 + rng.Intn(3)*rng.Intn(64)}
	for n := 1 + rng.Intn(4); n > 0; n-- {
		c.chunks = append(c.chunks, 1+rng.Intn(40))
		c.readSizes = append(c.readSizes, 1+rng.Intn(50))
	}
	if rng.Intn(2) == 0 {
		c.lineLimit = 1 + rng.Intn(30)
	}
	if rng.Intn(3) == 0 {
		c.maxMessage = int64(rng.Intn(len(in) + 2))
	}
	return c
}

func TestPatchedReadersMatchUpstream(t *testing.T) {
	hand := []string{
		"",
		".\r\n",
		"\r\n.\r\n",
		"hello\r\n.\r\nMAIL FROM:<a@b>\r\n",
		"..dot\r\n..\r\n.\r\n",
		".\rX\r\n.\r\n",
		"bare\nLF\n.\n.\r\n",
		"bare\rCR\r.\r\n.\r\n",
		"line\r\n.\r",
		"no end marker at all",
		string(bytes.Repeat([]byte("La de da de da 1.\r\n"), 500)) + ".\r\n",
		string(bytes.Repeat([]byte("x"), 5000)) + "\r\n.\r\n",
	}
	for _, in := range hand {
		for _, bufSize := range []int{16, 4096} {
			for _, lineLimit := range []int{0, 10, 2000} {
				for _, max := range []int64{0, 7, 1 << 20} {
					readCase{input: []byte(in), chunks: []int{1, 3, 4096}, readSizes: []int{1, 4096, 7},
						bufSize: bufSize, lineLimit: lineLimit, maxMessage: max}.check(t)
					readCase{input: []byte(in), readSizes: []int{32 << 10},
						bufSize: bufSize, lineLimit: lineLimit, maxMessage: max}.check(t)
				}
			}
		}
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 20000; i++ {
		randomCase(rng).check(t)
	}
}

func FuzzPatchedReadersMatchUpstream(f *testing.F) {
	f.Add([]byte("hello\r\n..x\r\n.\r\nQUIT\r\n"), uint8(3), uint8(5), uint8(0), uint8(0))
	f.Add([]byte(".\rX\r\n.\r\n"), uint8(1), uint8(1), uint8(4), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, chunk, read, lineLimit, max uint8) {
		readCase{input: in, chunks: []int{int(chunk) + 1}, readSizes: []int{int(read) + 1},
			bufSize: 16, lineLimit: int(lineLimit), maxMessage: int64(max)}.check(t)
	})
}
