package history

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lbd-project/lbd/internal/statefile"
	"github.com/lbd-project/lbd/pkg/config"
)

// The file format: magic, then the last sample (cumulative counters) and
// its time, then the fine, coarse and unfolded points, each a count and
// fixed-size little-endian records.
var magic = [8]byte{'L', 'B', 'D', 'H', 'I', 'S', 'T', '1'}

// maxPoints bounds what a file may claim, so a damaged one cannot make
// Decode allocate without limit.
const maxPoints = 1 << 16

type fileSample struct {
	Items, Bytes, Limit, Conns        int64
	Hits, Misses, Evictions, Commands uint64
	T                                 int64
}

// encode writes one tenant's series.
func (se *series) encode(w io.Writer) error {
	b := &bytes.Buffer{}
	b.Write(magic[:])
	l := se.last
	binary.Write(b, binary.LittleEndian, fileSample{l.Items, l.Bytes, l.Limit, l.Conns, l.Hits, l.Misses, l.Evictions, l.Commands, se.lastT})
	for _, ps := range [][]Point{se.fine.all(), se.coarse.all(), se.acc} {
		binary.Write(b, binary.LittleEndian, uint32(len(ps)))
		binary.Write(b, binary.LittleEndian, ps)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// decode reads what encode wrote.
func decode(data []byte) (*series, error) {
	r := bytes.NewReader(data)
	var m [8]byte
	if _, err := io.ReadFull(r, m[:]); err != nil || m != magic {
		return nil, errors.New("history: not a history file")
	}
	var fs fileSample
	if err := binary.Read(r, binary.LittleEndian, &fs); err != nil {
		return nil, fmt.Errorf("history: last sample: %w", err)
	}
	se := newSeries()
	se.last = Sample{Items: fs.Items, Bytes: fs.Bytes, Limit: fs.Limit, Conns: fs.Conns, Hits: fs.Hits, Misses: fs.Misses, Evictions: fs.Evictions, Commands: fs.Commands}
	se.lastT = fs.T
	for i, g := range []*ring{&se.fine, &se.coarse, nil} {
		var n uint32
		if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
			return nil, fmt.Errorf("history: series %d: %w", i, err)
		}
		if n > maxPoints || int(n)*binary.Size(Point{}) > r.Len() {
			return nil, fmt.Errorf("history: series %d: %d points do not fit the file", i, n)
		}
		ps := make([]Point, n)
		if err := binary.Read(r, binary.LittleEndian, ps); err != nil {
			return nil, fmt.Errorf("history: series %d: %w", i, err)
		}
		if g == nil {
			se.acc = ps
			continue
		}
		for _, p := range ps[max(0, len(ps)-len(g.pts)):] {
			g.add(p)
		}
	}
	if r.Len() != 0 {
		return nil, errors.New("history: trailing bytes")
	}
	return se, nil
}

// suffix names the files in the directory.
const suffix = ".hist"

// Save writes every tenant's series to dir, one file each, atomically.
func (r *Recorder) Save(dir string) error {
	r.mu.Lock()
	bufs := map[string][]byte{}
	for name, se := range r.tenants {
		var b bytes.Buffer
		if err := se.encode(&b); err != nil {
			r.mu.Unlock()
			return fmt.Errorf("history: encode %s: %w", name, err)
		}
		bufs[name] = b.Bytes()
	}
	r.mu.Unlock()
	var errs []error
	for name, b := range bufs {
		if err := statefile.WriteAtomic(filepath.Join(dir, name+suffix), b); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Load reads the series saved in dir (none if it does not exist). A
// damaged file is skipped and reported; the others load.
func Load(dir string) (*Recorder, error) {
	r := New()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("history: %w", err)
	}
	var errs []error
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), suffix)
		if !ok || !config.ValidName(name) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("history: %w", err))
			continue
		}
		se, err := decode(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Join(dir, e.Name()), err))
			continue
		}
		r.tenants[name] = se
	}
	return r, errors.Join(errs...)
}

// Remove deletes a tenant's file from dir.
func Remove(dir, tenant string) error {
	err := os.Remove(filepath.Join(dir, tenant+suffix))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
