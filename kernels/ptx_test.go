//go:build cuda

package kernels

import (
	"regexp"
	"strings"
	"testing"
)

// Every kernel is an entry of its module's committed PTX with as many parameters as its signature.
func TestPTXHasEveryKernel(t *testing.T) {
	for _, name := range Names {
		b, err := PTX(Modules[name])
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?s)\.visible \.entry ` + name + `\((.*?)\)`).FindSubmatch(b)
		if m == nil {
			t.Errorf("%s: no entry in %s", name, Modules[name])
			continue
		}
		if n := strings.Count(string(m[1]), ".param"); n != len(Signatures[name]) {
			t.Errorf("%s: %d PTX parameters, signature %q", name, n, Signatures[name])
		}
	}
}
