package capture

import (
	"fmt"
	"io"
	"os"
	"testing"
)

func TestZZDebug(t *testing.T) {
	s, err := OpenFile(os.Getenv("F"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		rf, err := s.Next()
		if err != nil {
			if err != io.EOF {
				t.Log(err)
			}
			break
		}
		fmt.Println(rf.Num, rf.Iface, rf.Time, len(rf.Data), rf.WireLen, rf.LinkType, rf.Dir)
	}
	for i, f := range s.Interfaces() {
		fmt.Printf("%d %+v\n", i, f)
	}
	fmt.Printf("%+v\n%q\n", s.Sections(), s.Warnings())
}
