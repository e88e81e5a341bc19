package main

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/ecows/ecows/frame"
)

func TestDumpCapture(t *testing.T) {
	raw, _ := hex.DecodeString(capture)
	var out strings.Builder
	if err := dump(&out, raw); err != nil {
		t.Fatal(err)
	}
	want := `text         fin=true "Hello"
text         fin=false "hel"
ping         fin=true ""
continuation fin=true "lo"
close        fin=true code=1000 reason=""
`
	if out.String() != want {
		t.Fatalf("got\n%s", out.String())
	}
}

func TestDumpReportsBadFrames(t *testing.T) {
	var out strings.Builder
	if err := dump(&out, []byte{0x83, 0x00}); !errors.Is(err, frame.ErrReservedOpcode) {
		t.Fatalf("err = %v", err)
	}
}
