package quantize

import (
	"testing"
)

// The quantizer's constants, written out: the host quantizer and the device kernels both read them.
func TestConstants(t *testing.T) {
	for _, c := range []struct {
		opt  Options
		want Constants
	}{
		{Options{Scheme: Absmax, Bits: 8}, Constants{Num: 127, Lo: -127, Hi: 127}},
		{Options{Scheme: Absmax, Bits: 4}, Constants{Num: 7, Lo: -7, Hi: 7}},
		{Options{Scheme: Absmax, Bits: 8, Preset: PresetArticle}, Constants{Num: 100, Lo: -127, Hi: 127}},
		{Options{Scheme: ZeroPoint, Bits: 8}, Constants{Num: 255, Offset: 128, Lo: -128, Hi: 127}},
		{Options{Scheme: ZeroPoint, Bits: 4, Preset: PresetArticle}, Constants{Num: 15, Offset: 8, Lo: -8, Hi: 7}},
		{Options{Scheme: ZeroPoint, Bits: 8, Preset: PresetArticle}, Constants{Num: 200, Offset: 128, Lo: -128, Hi: 127}},
	} {
		if got := c.opt.Constants(); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.opt, got, c.want)
		}
	}
}

func TestRowGroup(t *testing.T) {
	for _, c := range []struct{ C, OC, gs, want int }{
		{768, 4, 64, 64}, {768, 4, 768, 768}, {768, 4, 3072, 768}, {10, 3, 30, 10},
	} {
		if got, err := RowGroup(c.C, c.OC, c.gs); err != nil || got != c.want {
			t.Errorf("RowGroup(%d, %d, %d) = %d, %v; want %d", c.C, c.OC, c.gs, got, err, c.want)
		}
	}
	for _, c := range []struct{ C, OC, gs int }{{768, 4, 100}, {10, 3, 15}, {0, 3, 1}, {10, 3, 0}} {
		if _, err := RowGroup(c.C, c.OC, c.gs); err == nil {
			t.Errorf("RowGroup(%d, %d, %d): no error", c.C, c.OC, c.gs)
		}
	}
}

func TestSpec(t *testing.T) {
	q := &Options{Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerChannel}}
	if err := (Spec{Quant: q, Half: true}).Validate(); err == nil {
		t.Error("half and quantized: no error")
	}
	if !(Spec{}).Float() || (Spec{Half: true}).Float() || (Spec{Quant: q}).Float() {
		t.Error("Float")
	}
	if f := (Spec{Quant: q}).Fields(); f["scheme"] != "absmax" || f["bits"] != 8 || f["granularity"] != "channel" {
		t.Errorf("fields %v", f)
	}
	if f := (Spec{Half: true}).Fields(); f["scheme"] != SchemeFP16 || f["bits"] != 16 {
		t.Errorf("fields %v", f)
	}
}
