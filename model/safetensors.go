package model

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

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

// OpenSafetensors maps path and parses its header with nlpodyssey/safetensors, which returns
// zero-copy views into the map. The caller closes the returned mapping when done with the views.
func OpenSafetensors(path string) (safetensors.SafeTensors, *mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return safetensors.SafeTensors{}, nil, fmt.Errorf("model: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return safetensors.SafeTensors{}, nil, fmt.Errorf("model: %w", err)
	}
	if st.Size() < 8 {
		return safetensors.SafeTensors{}, nil, fmt.Errorf("model: %s: truncated: %d bytes, too short for a safetensors header", path, st.Size())
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return safetensors.SafeTensors{}, nil, fmt.Errorf("model: mmap %s: %w", path, err)
	}
	m := &mapping{data: data}
	parsed, err := ParseSafetensors(data)
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
	return writeAtomic(path, func(w *bufio.Writer) error {
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

// WriteFileAtomic writes data to path through a temporary file in the same folder and a rename.
func WriteFileAtomic(path string, data []byte) error {
	return writeAtomic(path, func(w *bufio.Writer) error { _, err := w.Write(data); return err })
}

func writeAtomic(path string, fill func(w *bufio.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	tmp := f.Name()
	defer trackTemp(tmp)()
	w := bufio.NewWriterSize(f, 1<<20)
	err = fill(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Chmod(0o644) // CreateTemp makes 0600; outputs are ordinary files
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("model: write %s: %w", path, err)
	}
	return nil
}

// WriteFolder fills a temporary sibling of dir and renames it into place, so a failed or
// interrupted write never leaves a half-written model. An existing dir is replaced only with force,
// only if it looks like a model folder (or is empty), and only once the new one is complete (it is
// put back if the final rename fails). dir must not overlap any of the protected folders (the
// sources being read): neither equal to, inside, nor around one of them.
func WriteFolder(dir string, force bool, protected []string, fill func(tmp string) error) error {
	dir = filepath.Clean(dir)
	exists, err := CheckFolder(dir, force, protected)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp*")
	if err != nil {
		return err
	}
	untrack := trackTemp(tmp)
	defer untrack()
	if err = os.Chmod(tmp, 0o755); err == nil {
		err = fill(tmp)
	}
	if err == nil && exists {
		old := tmp + ".old"
		if err = os.Rename(dir, old); err == nil {
			if err = os.Rename(tmp, dir); err != nil {
				os.Rename(old, dir)
			} else {
				return os.RemoveAll(old)
			}
		}
	} else if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		os.RemoveAll(tmp)
	}
	return err
}

// CheckFolder tells in advance whether WriteFolder may write dir (see there), and whether it
// exists; commands call it before long work.
func CheckFolder(dir string, force bool, protected []string) (exists bool, err error) {
	for _, p := range protected {
		if overlap(dir, p) {
			return false, fmt.Errorf("refusing to write %s: it overlaps the source folder %s; choose another output folder", dir, p)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return false, nil
	}
	switch {
	case !force:
		return true, fmt.Errorf("%s already exists (use --force to replace it)", dir)
	case !fi.IsDir():
		return true, fmt.Errorf("%s exists and is not a folder", dir)
	case !replaceable(dir):
		return true, fmt.Errorf("refusing to replace %s: it is not empty and holds no config.json, model.safetensors or report.json, so it is not a folder gpuquant wrote", dir)
	}
	return true, nil
}

// overlap reports whether a and b are the same folder or one contains the other, after resolving
// symbolic links as far as the paths exist.
func overlap(a, b string) bool {
	ra, rb := resolve(a), resolve(b)
	inside := func(x, y string) bool {
		rel, err := filepath.Rel(y, x)
		return err == nil && (rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))))
	}
	return inside(ra, rb) || inside(rb, ra)
}

// resolve is the absolute path with symbolic links of its longest existing prefix evaluated.
func resolve(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	rest := ""
	for cur := abs; ; cur = filepath.Dir(cur) {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		if filepath.Dir(cur) == cur {
			return abs
		}
		rest = filepath.Join(filepath.Base(cur), rest)
	}
}

// replaceable reports whether an existing folder may be replaced by --force: an empty one, a
// model folder (ours or Hugging Face's) or a gpuquant report.
func replaceable(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if n := e.Name(); n == "config.json" || n == "model.safetensors" || n == "report.json" {
			return true
		}
	}
	return len(entries) == 0
}

// Temporary files and folders being written, removed by RemoveTemps when the process is
// interrupted, so that a killed write leaves nothing behind.
var temps = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

func trackTemp(path string) (untrack func()) {
	temps.Lock()
	temps.m[path] = true
	temps.Unlock()
	return func() {
		temps.Lock()
		delete(temps.m, path)
		temps.Unlock()
	}
}

// RemoveTemps deletes every temporary file or folder a write in progress has made; call it from a
// signal handler before exiting.
func RemoveTemps() {
	temps.Lock()
	defer temps.Unlock()
	for p := range temps.m {
		os.RemoveAll(p)
	}
}
