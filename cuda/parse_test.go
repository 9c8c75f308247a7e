package cuda

import "testing"

func TestParseDevice(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{{"cuda", 0, true}, {"cuda:0", 0, true}, {"cuda:3", 3, true}, {"cuda:-1", 0, false},
		{"cuda:x", 0, false}, {"cpu", 0, false}, {"cuda:", 0, false}, {"gpu:0", 0, false}} {
		got, err := ParseDevice(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseDevice(%q) = %d, %v; want %d, ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}
