package compare

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/model/tokenizer"
)

// Generation is one model's continuation of a prompt.
type Generation struct {
	PromptIDs []int32 `json:"prompt_ids"`
	TokenIDs  []int32 `json:"token_ids"`
	Text      string  `json:"text"`
	Seconds   float64 `json:"seconds"`
	TokensPS  float64 `json:"tokens_per_s"`
}

// PromptIDs encodes a prompt; an empty one starts from <|endoftext|>, as GPT-2 was trained.
func PromptIDs(tok *tokenizer.Tokenizer, prompt string) []int32 {
	if prompt == "" {
		return []int32{tokenizer.EOT}
	}
	return tok.Encode(prompt)
}

// Generate continues prompt by n tokens with the weights w on ops (from its Upload), calling
// onToken (when not nil) with each new token as it comes.
func Generate(ops model.Ops, w *model.Weights, tok *tokenizer.Tokenizer, prompt string, n int, opt model.SampleOptions, onToken func(int32)) (*Generation, error) {
	smp, err := model.NewSampler(opt)
	if err != nil {
		return nil, err
	}
	ids := PromptIDs(tok, prompt)
	s, err := model.NewSession(ops, w, 0)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	start := time.Now()
	out, err := model.Generate(s, ids, n, smp, onToken)
	if err != nil {
		return nil, err
	}
	secs := time.Since(start).Seconds()
	text, err := tok.Decode(out)
	if err != nil {
		return nil, err
	}
	return &Generation{PromptIDs: ids, TokenIDs: out, Text: text, Seconds: secs, TokensPS: float64(len(out)) / secs}, nil
}

// DeviceStats is a device backend's figures for JSON reports (model.DeviceFacts, named as in
// report.json, bench --json and eval --json).
type DeviceStats struct {
	WeightBytes int64                   `json:"device_weight_bytes,omitempty"` // the weights' device memory
	Name        string                  `json:"device_name"`
	OpTimes     map[string]model.OpTime `json:"op_times,omitempty"`
	Graphs      bool                    `json:"cuda_graphs"`
	InUse       int64                   `json:"device_in_use_bytes"`
	Peak        int64                   `json:"device_peak_bytes"`
	Cached      int64                   `json:"device_cached_bytes"`
	DriverUsed  int64                   `json:"device_driver_used_bytes"`
	Total       int64                   `json:"device_total_bytes"`
}

// DeviceOf reports o's device (nil when o runs on the host), with the device bytes of the
// weights w when not nil.
func DeviceOf(o model.Ops, w *model.Weights) *DeviceStats {
	d, ok := o.(model.Device)
	if !ok {
		return nil
	}
	f := d.DeviceFacts()
	out := &DeviceStats{Name: f.Name, OpTimes: f.OpTimes, Graphs: f.Graphs, InUse: f.InUse, Peak: f.Peak, Cached: f.Cached,
		DriverUsed: f.DriverUsed, Total: f.Total}
	if w != nil {
		out.WeightBytes = w.Bytes()
	}
	return out
}

// PeakRSS is the process's peak resident set size so far.
func PeakRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Maxrss * 1024 // Linux reports KiB
}

// currentRSS is the resident set size now, from /proc (0 where unavailable).
func currentRSS() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res int64
	fmt.Sscan(string(data), &size, &res)
	return res * int64(os.Getpagesize())
}

// ReadText reads a UTF-8 text file with CRLF line endings normalised to LF.
func ReadText(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if len(data) == 0 {
		return "", fmt.Errorf("%s is empty", path)
	}
	if !utf8.Valid(data) {
		return "", fmt.Errorf("%s is not valid UTF-8 text", path)
	}
	return strings.ReplaceAll(string(data), "\r\n", "\n"), nil
}
