// Package gpu is the CUDA backend: it implements model.Ops by launching the kernels of package
// kernels through package cuda. Built without the `cuda` tag it only reports ErrNoCUDA, so the
// default build stays pure Go.
package gpu
