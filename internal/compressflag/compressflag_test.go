package compressflag

import (
	"flag"
	"testing"
)

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		ok, on   bool
		takeover bool
	}{
		{"off", true, false, false},
		{"on", true, true, false},
		{"takeover", true, true, true},
		{"", false, false, false},
		{"ON", false, false, false},
		{"yes", false, false, false},
	} {
		o, ok := Options(tc.mode)
		if ok != tc.ok || (o != nil) != tc.on || (o != nil && o.ContextTakeover != tc.takeover) {
			t.Errorf("Options(%q) = %+v, %v", tc.mode, o, ok)
		}
	}
}

func TestFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "off"},
		{[]string{"-compress", "takeover"}, "takeover"},
		{[]string{"-compress=on"}, "on"},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		mode := Flag(fs)
		if err := fs.Parse(tc.args); err != nil || *mode != tc.want {
			t.Errorf("Parse(%q): -compress %q, %v; want %q", tc.args, *mode, err, tc.want)
		}
	}
}
