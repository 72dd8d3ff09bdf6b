// Package importfile reads the files `biomatch import` takes: JSONL and
// .npy matrices of templates. A malformed file is an error, never a panic
// (FuzzOpenNPY).
package importfile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/biomatch/biomatch/engine"
)

// Reader yields import items; io.EOF ends. Close closes its files.
type Reader interface {
	Next() (engine.ImportItem, error)
	Close() error
}

// files are the open files of a Reader.
type files []*os.File

func (fs files) Close() error {
	var errs []error
	for _, f := range fs {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// Open opens a JSONL file (one {"external_id", "embedding"} object a line)
// or a .npy matrix (idsPath: a file of one external id a line, optional)
// and returns its reader and item count. On an error it leaves no file
// open.
func Open(path, idsPath string) (_ Reader, _ int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	opened := files{f}
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()
	if strings.HasSuffix(path, ".npy") {
		r, rows, err := openNPY(bufio.NewReaderSize(f, 1<<20), f.Name())
		if err != nil {
			return nil, 0, err
		}
		if idsPath != "" {
			idf, err := os.Open(idsPath)
			if err != nil {
				return nil, 0, err
			}
			opened = append(opened, idf)
			r.ids = bufio.NewScanner(idf)
		}
		r.files = opened
		return r, rows, nil
	}
	var total int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			total++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	sc = bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	return &jsonlReader{sc: sc, files: opened}, total, nil
}

type jsonlReader struct {
	files
	sc   *bufio.Scanner
	line int
}

func (r *jsonlReader) Next() (engine.ImportItem, error) {
	for r.sc.Scan() {
		r.line++
		raw := bytes.TrimSpace(r.sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var rec struct {
			ExternalID string    `json:"external_id"`
			Embedding  []float64 `json:"embedding"`
		}
		if err := json.Unmarshal(raw, &rec); err != nil {
			return engine.ImportItem{}, fmt.Errorf("line %d: not a JSON object with external_id and embedding", r.line)
		}
		return engine.ImportItem{ExternalID: rec.ExternalID, Vector: rec.Embedding}, nil
	}
	if err := r.sc.Err(); err != nil {
		return engine.ImportItem{}, err
	}
	return engine.ImportItem{}, io.EOF
}

var npyHeader = regexp.MustCompile(`'descr':\s*'([<|]f[48])'.*'fortran_order':\s*(False|True).*'shape':\s*\((\d+),\s*(\d+),?\)`)

type npyReader struct {
	files    // nil when not read from a file
	r        io.Reader
	ids      *bufio.Scanner
	rows     int64
	dim      int
	f64      bool
	row      int64
	rowBytes []byte
}

// openNPY reads the header of a 2-D little-endian float32/float64 C-order
// .npy matrix; the rows follow. Hand-written on purpose: the maintained
// reader (codeberg.org/sbinet/npyio v0.14) panics on a header without its
// trailing newline and accepts negative shapes, and an import must answer
// a malformed file with an error. FuzzOpenNPY holds this one to that.
func openNPY(br io.Reader, name string) (*npyReader, int64, error) {
	magic := make([]byte, 8)
	if _, err := io.ReadFull(br, magic); err != nil || string(magic[:6]) != "\x93NUMPY" {
		return nil, 0, fmt.Errorf("%s: not a .npy file", name)
	}
	var hlen int
	switch magic[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, 0, fmt.Errorf("%s: truncated header", name)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, 0, fmt.Errorf("%s: truncated header", name)
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	default:
		return nil, 0, fmt.Errorf("%s: .npy format version %d is not supported", name, magic[6])
	}
	if hlen > 1<<16 {
		return nil, 0, fmt.Errorf("%s: a header of %d bytes is not a matrix's", name, hlen)
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, 0, fmt.Errorf("%s: truncated header", name)
	}
	m := npyHeader.FindSubmatch(hdr)
	if m == nil || string(m[2]) == "True" {
		return nil, 0, fmt.Errorf("%s: want a C-order 2-D float32 or float64 matrix, header %q", name, hdr)
	}
	rows, err1 := strconv.ParseInt(string(m[3]), 10, 64)
	dim, err2 := strconv.Atoi(string(m[4]))
	if err1 != nil || err2 != nil || dim < 1 || dim > 1<<16 {
		return nil, 0, fmt.Errorf("%s: shape (%s, %s) is not one of templates", name, m[3], m[4])
	}
	r := &npyReader{r: br, rows: rows, dim: dim, f64: strings.HasSuffix(string(m[1]), "8")}
	width := 4
	if r.f64 {
		width = 8
	}
	r.rowBytes = make([]byte, dim*width)
	return r, rows, nil
}

func (r *npyReader) Next() (engine.ImportItem, error) {
	if r.row == r.rows {
		return engine.ImportItem{}, io.EOF
	}
	if _, err := io.ReadFull(r.r, r.rowBytes); err != nil {
		if errors.Is(err, io.EOF) { // no byte of the row: the file is shorter than its header says
			err = io.ErrUnexpectedEOF
		}
		return engine.ImportItem{}, fmt.Errorf("row %d of %d: the file ends early (truncated?): %w", r.row+1, r.rows, err)
	}
	r.row++
	v := make([]float64, r.dim)
	for i := range v {
		if r.f64 {
			v[i] = math.Float64frombits(binary.LittleEndian.Uint64(r.rowBytes[8*i:]))
		} else {
			v[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(r.rowBytes[4*i:])))
		}
	}
	it := engine.ImportItem{Vector: v}
	if r.ids != nil && r.ids.Scan() {
		it.ExternalID = strings.TrimSpace(r.ids.Text())
	}
	return it, nil
}
