package model

// CompareRows exposes compareRows to the external tests (package model_test), which can import
// the CPU backend without an import cycle.
var CompareRows = compareRows
