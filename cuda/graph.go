//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"time"

	"gorgonia.org/cu"
)

// Graph is a CUDA graph captured from the device's stream and instantiated: Launch replays all of
// its work with one call, the same kernels on the same pointers and arguments.
type Graph struct {
	d           *Device
	graph, exec uintptr
	name        string // for errors of later syncs
	Nodes       int    // kernels, copies and memsets captured
}

// Capture records the work that fn queues on the device's stream (Launch, CopyDevice, Memset) into
// a graph instead of running it, and instantiates it. Copies to or from host memory and Sync are
// refused while capturing (ErrCapturing). Nothing captured runs until Graph.Launch.
func (d *Device) Capture(fn func() error) (*Graph, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	if d.st.capture != 0 {
		d.leave()
		return nil, fmt.Errorf("cuda: capture on %s: a capture is already in progress", d.st.info)
	}
	if err := beginCapture(d.sh); err != nil {
		d.leave()
		return nil, fmt.Errorf("cuda: begin capture on %s: %w", d.st.info, err)
	}
	d.st.capture = d.sh
	d.leave()

	ferr := fn()

	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	d.st.capture = 0
	graph, err := endCapture(d.sh)
	if ferr != nil || err != nil {
		if graph != 0 {
			graphDestroy(graph)
		}
		if ferr != nil {
			return nil, fmt.Errorf("cuda: capture on %s: %w", d.st.info, errors.Join(ferr, err))
		}
		return nil, fmt.Errorf("cuda: end capture on %s: %w (was an unsupported call made on the stream while capturing?)", d.st.info, err)
	}
	g := &Graph{d: d, graph: graph}
	if g.Nodes, err = graphNodes(graph); err != nil {
		graphDestroy(graph)
		return nil, fmt.Errorf("cuda: graph nodes on %s: %w", d.st.info, err)
	}
	g.name = fmt.Sprintf("graph of %d nodes", g.Nodes)
	if g.exec, err = graphInstantiate(graph); err != nil {
		graphDestroy(graph)
		return nil, fmt.Errorf("cuda: instantiate graph of %d nodes on %s: %w", g.Nodes, d.st.info, err)
	}
	return g, nil
}

// Launch queues one replay of the graph on the stream of the device that captured it.
func (g *Graph) Launch() error {
	d := g.d
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if g.exec == 0 {
		return fmt.Errorf("cuda: launch graph on %s: graph is closed", d.st.info)
	}
	if err := graphLaunch(g.exec, d.sh); err != nil {
		return fmt.Errorf("cuda: launch graph of %d nodes on %s: %w", g.Nodes, d.st.info, err)
	}
	d.st.last = lastLaunch{name: g.name}
	return nil
}

// Close destroys the graph (queued replays still complete).
func (g *Graph) Close() error {
	d := g.d
	if err := d.enter(); err != nil {
		return nil // the device's Close tore down its context
	}
	defer d.leave()
	var err error
	if g.exec != 0 {
		err = graphExecDestroy(g.exec)
		g.exec = 0
	}
	if g.graph != 0 {
		err = errors.Join(err, graphDestroy(g.graph))
		g.graph = 0
	}
	if err != nil {
		return fmt.Errorf("cuda: destroy graph on %s: %w", d.st.info, err)
	}
	return nil
}

// Event is a CUDA event for timing work on a device's stream.
type Event struct {
	d  *Device
	ev cu.Event
}

// NewEvent makes a timing event on the device; Record places it on the device's stream.
func (d *Device) NewEvent() (*Event, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	ev, err := cu.MakeEvent(cu.DefaultEvent)
	if err != nil {
		return nil, fmt.Errorf("cuda: event on %s: %w", d.st.info, drv(err))
	}
	return &Event{d: d, ev: ev}, nil
}

// Record queues the event on the device's stream: it completes when the work queued before it has.
func (e *Event) Record() error {
	if err := e.d.enter(); err != nil {
		return err
	}
	defer e.d.leave()
	if err := e.ev.Record(e.d.stream); err != nil {
		return fmt.Errorf("cuda: record event on %s: %w", e.d.st.info, drv(err))
	}
	return nil
}

// Sync waits until the event has completed.
func (e *Event) Sync() error {
	if err := e.d.enter(); err != nil {
		return err
	}
	defer e.d.leave()
	if err := e.ev.Synchronize(); err != nil {
		return fmt.Errorf("cuda: wait for event on %s: %w", e.d.st.info, drv(err))
	}
	return nil
}

// Close destroys the event.
func (e *Event) Close() error {
	if err := e.d.enter(); err != nil {
		return nil
	}
	defer e.d.leave()
	return drv(cu.DestroyEvent(&e.ev))
}

// Elapsed waits for end and returns the device time between start and end (resolution about
// half a microsecond).
func Elapsed(start, end *Event) (time.Duration, error) {
	if err := end.Sync(); err != nil {
		return 0, err
	}
	d := end.d
	if err := d.enter(); err != nil {
		return 0, err
	}
	defer d.leave()
	ms, err := start.ev.Elapsed(end.ev)
	if err != nil {
		return 0, fmt.Errorf("cuda: elapsed time on %s: %w", d.st.info, drv(err))
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

// Time runs fn, which queues work on the device's stream, between two events and returns the
// device time that work took (it waits for it).
func (d *Device) Time(fn func() error) (time.Duration, error) {
	start, err := d.NewEvent()
	if err != nil {
		return 0, err
	}
	defer start.Close()
	end, err := d.NewEvent()
	if err != nil {
		return 0, err
	}
	defer end.Close()
	if err := start.Record(); err != nil {
		return 0, err
	}
	if err := fn(); err != nil {
		return 0, err
	}
	if err := end.Record(); err != nil {
		return 0, err
	}
	return Elapsed(start, end)
}
