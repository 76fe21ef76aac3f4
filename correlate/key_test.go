package correlate

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestKeyEqualSeesEveryField(t *testing.T) {
	base := Key{Proto: ProtoICMP, Kind: 8, MAC: MAC{2}, Seq: 1, Ack: 2, IPID: 3, Len: 4, Hash: 5,
		Addr1: netip.MustParseAddr("10.0.0.1"), Addr2: netip.MustParseAddr("10.0.0.2")}
	if !base.equal(&base) {
		t.Fatal("a key is not equal to itself")
	}
	kt := reflect.TypeFor[Key]()
	for i := range kt.NumField() {
		k := base
		v := reflect.ValueOf(&k).Elem().Field(i)
		switch v.Interface().(type) {
		case netip.Addr:
			v.Set(reflect.ValueOf(netip.MustParseAddr("fd00::9")))
		case MAC:
			v.Index(5).SetUint(9)
		default:
			if !v.CanUint() {
				t.Fatalf("field %s (%s): teach this test to change it", kt.Field(i).Name, v.Type())
			}
			v.SetUint(v.Uint() + 100)
		}
		if k == base {
			t.Fatalf("field %s: the test did not change it", kt.Field(i).Name)
		}
		if k.equal(&base) || base.equal(&k) {
			t.Errorf("field %s differs, equal says the keys are equal", kt.Field(i).Name)
		}
	}
}
