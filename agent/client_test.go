package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"testing"
)

// streamOf is a batch stream of the given batch files, announced with the
// given hashes ("" for the true one).
func streamOf(after uint64, files [][]byte, shas ...string) []byte {
	var b bytes.Buffer
	for i, f := range files {
		sum := sha256.Sum256(f)
		sha := hex.EncodeToString(sum[:])
		if i < len(shas) && shas[i] != "" {
			sha = shas[i]
		}
		line, _ := json.Marshal(StreamItem{Version: after + uint64(i) + 1, SHA256: sha, Size: int64(len(f))})
		b.Write(line)
		b.WriteByte('\n')
		b.Write(f)
	}
	return b.Bytes()
}

func TestReadStream(t *testing.T) {
	one, two := []byte("first batch"), []byte("second\nbatch\n")
	whole := streamOf(5, [][]byte{one, two})
	zero := hex.EncodeToString(make([]byte, 32))
	for name, tc := range map[string]struct {
		data     []byte
		maxBytes int64
		last     uint64
		checksum bool
	}{
		"whole":          {whole, 1 << 20, 7, false},
		"empty":          {nil, 1 << 20, 5, false},
		"tampered first": {streamOf(5, [][]byte{one, two}, zero), 1 << 20, 5, true},
		"tampered last":  {streamOf(5, [][]byte{one, two}, "", zero), 1 << 20, 6, true},
		"cut in a batch": {whole[:len(whole)-3], 1 << 20, 6, false},
		"cut in a line":  {whole[:20], 1 << 20, 5, false},
		"over max_bytes": {whole, 30, 6, false},
		"first over max": {whole, 1, 6, false},
		"gap":            {append(streamOf(5, [][]byte{one}), streamOf(7, [][]byte{two})...), 1 << 20, 6, false},
		"not JSON":       {[]byte("hello\n"), 1 << 20, 5, false},
		"long line":      {bytes.Repeat([]byte("x"), 100<<10), 1 << 20, 5, false},
		"zero size":      {[]byte(`{"version":6,"sha256":"` + zero + `","size":0}` + "\n"), 1 << 20, 5, false},
	} {
		t.Run(name, func(t *testing.T) {
			var got [][]byte
			last, err := ReadStream(bytes.NewReader(tc.data), 5, tc.maxBytes, func(it StreamItem, r io.Reader) error {
				data, err := io.ReadAll(r)
				if err == nil {
					got = append(got, data)
				}
				return err
			})
			wantErr := name != "whole" && name != "empty"
			if last != tc.last || (err != nil) != wantErr || errors.Is(err, ErrChecksum) != tc.checksum {
				t.Fatalf("ReadStream = %d, %v; want %d, error %v, checksum %v", last, err, tc.last, wantErr, tc.checksum)
			}
			if len(got) != int(tc.last-5) {
				t.Fatalf("%d batches read whole, %d accepted", len(got), tc.last-5)
			}
		})
	}
}

// FuzzReadStream feeds the collector's stream reader arbitrary bytes: it never
// panics, and whatever it accepts is exactly what was announced.
func FuzzReadStream(f *testing.F) {
	one, two := []byte("first batch"), []byte("second\nbatch\n")
	zero := hex.EncodeToString(make([]byte, 32))
	f.Add(streamOf(0, [][]byte{one, two}), uint64(0), int64(1<<20))
	f.Add(streamOf(3, [][]byte{one, two}, "", zero), uint64(3), int64(1<<20))
	f.Add(streamOf(0, [][]byte{one}), uint64(0), int64(1))
	f.Add([]byte(`{"version":1,"sha256":"`+zero+`","size":5,"extra":[1,2]}`+"\nabcde"), uint64(0), int64(0))
	f.Fuzz(func(t *testing.T, data []byte, after uint64, maxBytes int64) {
		next := after + 1
		last, err := ReadStream(bytes.NewReader(data), after, maxBytes, func(it StreamItem, r io.Reader) error {
			if it.Version != next {
				t.Fatalf("item %d, want %d", it.Version, next)
			}
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			if int64(len(b)) != it.Size || hex.EncodeToString(sum[:]) != it.SHA256 {
				t.Fatalf("batch %d accepted with %d bytes hashing to %x, announced %d and %s", it.Version, len(b), sum, it.Size, it.SHA256)
			}
			next++
			return nil
		})
		if last < after || (err == nil && last != next-1) {
			t.Fatalf("last %d after %d, next %d, %v", last, after, next, err)
		}
	})
}
