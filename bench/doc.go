// Package bench holds the benchmarks of biomatch's search: the hot kernels
// (go test ./bench -bench Kernel -benchmem), the in-memory index
// (-bench Exact), and, in bench/compare, the side-by-side comparison of the
// in-memory exact index with pgvector (exact scan and HNSW) on one
// synthetic dataset. See bench/README.md for the commands and the numbers.
package bench
