package importfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strconv"
	"testing"
)

// npyFile is a .npy file of rows×dim float32 values (value i = i).
func npyFile(rows, dim int) []byte {
	hdr := []byte("{'descr': '<f4', 'fortran_order': False, 'shape': (" + strconv.Itoa(rows) + ", " + strconv.Itoa(dim) + "), }\n")
	b := append([]byte("\x93NUMPY\x01\x00"), byte(len(hdr)), byte(len(hdr)>>8))
	b = append(b, hdr...)
	for i := range rows * dim {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(i)))
	}
	return b
}

// FuzzOpenNPY: any file either opens as a matrix whose rows then read (or
// end with an error), or is refused with an error; nothing panics and no
// header makes it allocate without bound.
func FuzzOpenNPY(f *testing.F) {
	f.Add(npyFile(2, 3))
	f.Add([]byte("\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'"))
	f.Add([]byte("\x93NUMPY\x02\x00\xff\xff\xff\xff"))
	f.Add([]byte("\x93NUMPY\x01\x00\x3c\x00{'descr': '<f8', 'fortran_order': False, 'shape': (-5, 3), }"))
	f.Fuzz(func(t *testing.T, file []byte) {
		r, rows, err := openNPY(bytes.NewReader(file), "fuzz.npy")
		if err != nil {
			return
		}
		for i := int64(0); i < min(rows, 100); i++ {
			if _, err := r.Next(); err != nil {
				if errors.Is(err, io.EOF) && i != rows {
					t.Fatalf("EOF at row %d of %d", i, rows)
				}
				return
			}
		}
	})
}

func TestOpenNPY(t *testing.T) {
	r, rows, err := openNPY(bytes.NewReader(npyFile(2, 3)), "m.npy")
	if err != nil || rows != 2 {
		t.Fatalf("openNPY = %d rows, %v", rows, err)
	}
	for want := range 2 {
		it, err := r.Next()
		if err != nil || len(it.Vector) != 3 || it.Vector[0] != float64(3*want) {
			t.Fatalf("row %d = %v, %v", want, it.Vector, err)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last row: %v, want EOF", err)
	}
	// A file shorter than its header says is an error, never a clean end
	// (the import would stop early and report success).
	file := npyFile(2, 3)
	r, _, _ = openNPY(bytes.NewReader(file[:len(file)-12]), "short.npy")
	r.Next()
	if _, err := r.Next(); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("truncated file: %v, want an error that is not EOF", err)
	}
	r, _, _ = openNPY(bytes.NewReader(file[:len(file)-24]), "short.npy")
	r.Next()
	if _, err := r.Next(); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("file ending on a row boundary before its last row: %v, want an error that is not EOF", err)
	}
	// A header without its trailing newline (which crashes npyio) is read.
	if _, rows, err := openNPY(bytes.NewReader([]byte("\x93NUMPY\x01\x00\x3b\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }")), "m.npy"); err != nil || rows != 2 {
		t.Errorf("header without newline: %d rows, %v", rows, err)
	}
	for name, file := range map[string][]byte{
		"negative shape": []byte("\x93NUMPY\x01\x00\x3c\x00{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }\n"),
		"fortran order":  []byte("\x93NUMPY\x01\x00\x3b\x00{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n"),
		"huge header":    []byte("\x93NUMPY\x02\x00\xff\xff\xff\x7f"),
	} {
		if _, _, err := openNPY(bytes.NewReader(file), name); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
