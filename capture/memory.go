package capture

import "io"

// MemorySource replays frames held in memory (a finished live capture) as a
// Source, one interface per source.
type MemorySource struct {
	Iface  Interface
	Frames []RawFrame
	next   int
}

var _ Source = (*MemorySource)(nil)

func (m *MemorySource) Next() (RawFrame, error) {
	if m.next >= len(m.Frames) {
		return RawFrame{}, io.EOF
	}
	rf := m.Frames[m.next]
	m.next++
	rf.Iface = 0
	return rf, nil
}

func (m *MemorySource) Interfaces() []Interface { return []Interface{m.Iface} }
func (m *MemorySource) Warnings() []string      { return nil }
func (m *MemorySource) Close() error            { return nil }
