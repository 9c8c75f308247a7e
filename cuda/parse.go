package cuda

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseDevice reads a device name "cuda:N" ("cuda" alone means cuda:0) and returns N.
// It only parses: whether device N exists is for Open to say.
func ParseDevice(s string) (int, error) {
	switch {
	case s == "cuda":
		return 0, nil
	case strings.HasPrefix(s, "cuda:"):
		n, err := strconv.Atoi(s[len("cuda:"):])
		if err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, fmt.Errorf("cuda: bad device %q (want cuda:N, e.g. cuda:0)", s)
}
