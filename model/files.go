package model

// Writing outputs safely: every file goes through a temporary sibling and a rename, every output
// folder through a temporary sibling folder, and the temporaries in progress are removed when the
// process is interrupted (RemoveTemps), so a failed or interrupted write never leaves a partial
// output or touches what it replaces.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// WriteFileAtomic writes data to path through a temporary file in the same folder and a rename.
func WriteFileAtomic(path string, data []byte) error {
	return WriteAtomic(path, func(w *bufio.Writer) error { _, err := w.Write(data); return err })
}

// WriteAtomic writes path through a temporary file in the same folder, filled by fill through a
// buffered writer, and a rename: a failed or interrupted write leaves nothing at path.
func WriteAtomic(path string, fill func(w *bufio.Writer) error) error {
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

// CheckFile tells in advance whether an output file may be written at path (through
// WriteAtomic): never over or inside a protected source, never over a folder, and over an
// existing file only with force.
func CheckFile(path string, force bool, protected []string) error {
	for _, p := range protected {
		if overlap(path, p) {
			return fmt.Errorf("refusing to write %s: it overlaps the source %s; choose another output file", path, p)
		}
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return nil
	case fi.IsDir():
		return fmt.Errorf("%s is a folder", path)
	case !force:
		return fmt.Errorf("%s already exists (use --force to replace it)", path)
	}
	return nil
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
