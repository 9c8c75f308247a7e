package model

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/nlpodyssey/safetensors"
	"golang.org/x/sys/unix"
)

// mapping is a read-only memory map of a whole file.
type mapping struct{ data []byte }

func (m *mapping) Close() error {
	if m.data == nil {
		return nil
	}
	err := unix.Munmap(m.data)
	m.data = nil
	return err
}

// release tells the kernel that b (a part of the map) will not be read again, so its pages stop
// counting against this process while the rest of the checkpoint is converted.
func (m *mapping) release(b []byte) {
	if len(b) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafePointer(b))
	base := uintptr(unsafePointer(m.data))
	lo := (start - base + page - 1) / page * page
	hi := (start - base + uintptr(len(b))) / page * page
	if hi > lo {
		_ = unix.Madvise(m.data[lo:hi], unix.MADV_DONTNEED)
	}
}

// MapFile maps the whole file at path read-only (a checkpoint in format, named in errors); close
// the result to unmap it.
func MapFile(path string, format string) ([]byte, io.Closer, error) {
	m, err := mapFile(path, 1, format)
	if err != nil {
		return nil, nil, err
	}
	return m.data, m, nil
}

// mapFile maps path, refusing a file under minSize bytes as too short for a header of format.
func mapFile(path string, minSize int64, format string) (*mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if st.Size() < minSize {
		return nil, fmt.Errorf("model: %s: truncated: %d bytes, too short for a %s header", path, st.Size(), format)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("model: mmap %s: %w", path, err)
	}
	return &mapping{data: data}, nil
}

// OpenSafetensors maps path and parses its header with nlpodyssey/safetensors, which returns
// zero-copy views into the map. The caller closes the returned mapping when done with the views.
func OpenSafetensors(path string) (safetensors.SafeTensors, *mapping, error) {
	m, err := mapFile(path, 8, "safetensors")
	if err != nil {
		return safetensors.SafeTensors{}, nil, err
	}
	parsed, err := ParseSafetensors(m.data)
	if err != nil {
		m.Close()
		return safetensors.SafeTensors{}, nil, fmt.Errorf("model: %s: %w", path, err)
	}
	return parsed, m, nil
}

// ParseSafetensors checks a whole safetensors file image and parses it. The checks in front of the
// library give errors that say what is wrong (truncation, a header running past the end, bad
// offsets) rather than its terse ones.
func ParseSafetensors(data []byte) (safetensors.SafeTensors, error) {
	if len(data) < 8 {
		return safetensors.SafeTensors{}, fmt.Errorf("truncated: %d bytes, too short for a safetensors header", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > uint64(len(data)-8) {
		return safetensors.SafeTensors{}, fmt.Errorf("header length %d runs past the end of the file (%d bytes)", n, len(data))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+n], &raw); err != nil {
		return safetensors.SafeTensors{}, fmt.Errorf("malformed JSON header: %w", err)
	}
	type info struct {
		name  string
		DType string    `json:"dtype"`
		Shape []int64   `json:"shape"`
		Offs  [2]uint64 `json:"data_offsets"`
	}
	var infos []info
	for name, msg := range raw {
		if name == "__metadata__" {
			continue
		}
		var t info
		if err := json.Unmarshal(msg, &t); err != nil {
			return safetensors.SafeTensors{}, fmt.Errorf("tensor %q: malformed header entry: %w", name, err)
		}
		t.name = name
		if _, err := safetensors.ParseDType(t.DType); err != nil {
			return safetensors.SafeTensors{}, fmt.Errorf("tensor %q: unknown dtype %q", name, t.DType)
		}
		infos = append(infos, t)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Offs[0] < infos[j].Offs[0] })
	dataLen := uint64(len(data)) - 8 - n
	var end uint64
	for _, t := range infos {
		s, e := t.Offs[0], t.Offs[1]
		switch {
		case e < s:
			return safetensors.SafeTensors{}, fmt.Errorf("tensor %q: data offsets [%d, %d) are reversed", t.name, s, e)
		case e > dataLen:
			return safetensors.SafeTensors{}, fmt.Errorf("tensor %q: data offsets [%d, %d) run past the end of the data (%d bytes): file truncated?", t.name, s, e, dataLen)
		case s < end:
			return safetensors.SafeTensors{}, fmt.Errorf("tensor %q: data offsets [%d, %d) overlap the previous tensor (ending at %d)", t.name, s, e, end)
		}
		end = e
	}
	if end != dataLen {
		return safetensors.SafeTensors{}, fmt.Errorf("data section is %d bytes but tensors cover %d: truncated or padded file", dataLen, end)
	}
	st, err := safetensors.Deserialize(data)
	if err != nil {
		return safetensors.SafeTensors{}, err
	}
	return st, nil
}

// STensor is one tensor to write: its raw little-endian bytes are produced on demand by Fill, so
// multi-gigabyte checkpoints stream to disk without being held in memory twice.
type STensor struct {
	Name  string
	DType string // "F32", "F16", "BF16", "I8", "U8"
	Shape []int
	Fill  func(w io.Writer) error
}

// WriteSafetensors writes tensors (in the given order) to path through a temporary file that is
// renamed into place only when complete.
func WriteSafetensors(path string, tensors []STensor, metadata map[string]string) error {
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off uint64
	sizes := make([]uint64, len(tensors))
	for i, t := range tensors {
		dt, err := safetensors.ParseDType(t.DType)
		if err != nil {
			return fmt.Errorf("model: write %s: tensor %s: %w", path, t.Name, err)
		}
		sizes[i] = uint64(NumElements(t.Shape)) * dt.Size()
		header[t.Name] = map[string]any{"dtype": t.DType, "shape": t.Shape, "data_offsets": []uint64{off, off + sizes[i]}}
		off += sizes[i]
	}
	hdr, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hdr)%8 != 0 { // keeps the data section 8-byte aligned for zero-copy readers
		hdr = append(hdr, ' ')
	}
	return WriteAtomic(path, func(w *bufio.Writer) error {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
		w.Write(n[:])
		w.Write(hdr)
		for i, t := range tensors {
			cw := &countingWriter{w: w}
			if err := t.Fill(cw); err != nil {
				return fmt.Errorf("tensor %s: %w", t.Name, err)
			}
			if cw.n != sizes[i] {
				return fmt.Errorf("tensor %s: wrote %d bytes, its shape %v needs %d", t.Name, cw.n, t.Shape, sizes[i])
			}
		}
		return nil
	})
}

type countingWriter struct {
	w *bufio.Writer
	n uint64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}
