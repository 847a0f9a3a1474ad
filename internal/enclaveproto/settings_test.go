package enclaveproto

import (
	"reflect"
	"testing"
	"time"
)

// setNonZero gives v a value other than its zero value, or reports that
// this test does not know its kind yet.
func setNonZero(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		v.SetInt(1)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		if !setNonZero(s.Index(0)) {
			return false
		}
		v.Set(s)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(1, 0).UTC()))
			return true
		}
		return setNonZero(v.Field(0))
	default:
		return false
	}
	return true
}

// TestSameSettingsSeesEveryField changes each field of Configure in turn:
// a change to any field but the credentials must count as other
// settings, so a field added to Configure cannot be ignored when a
// restarted helper configures a running enclave again.
func TestSameSettingsSeesEveryField(t *testing.T) {
	base := &Configure{ChainID: "c", Addresses: []string{"unix:///v.sock"}, ProtocolVersion: "v1", SealedConsensusKey: []byte{9}}
	if !SameSettings(base, base) {
		t.Fatal("a configuration differs from itself")
	}
	typ := reflect.TypeFor[Configure]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		t.Run(f.Name, func(t *testing.T) {
			c := *base
			v := reflect.ValueOf(&c).Elem().Field(i)
			v.SetZero()
			if !setNonZero(v) {
				t.Fatalf("field %s of kind %s: teach setNonZero to change it", f.Name, v.Kind())
			}
			// Compare with both a zero and the base value, whichever
			// differs.
			other := *base
			reflect.ValueOf(&other).Elem().Field(i).SetZero()
			if reflect.DeepEqual(c, other) {
				t.Fatalf("setNonZero left %s at its zero value", f.Name)
			}
			same := SameSettings(&c, &other)
			if want := f.Name == "Credentials"; same != want {
				t.Errorf("SameSettings with %s changed = %v, want %v", f.Name, same, want)
			}
		})
	}
}
