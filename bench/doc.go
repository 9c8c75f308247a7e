// Package bench holds gpuquant's benchmark workloads and result formats.
package bench
