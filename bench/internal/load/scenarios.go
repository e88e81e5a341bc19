package load

// Scenario is one named load shape.
type Scenario struct {
	Name   string // short name used in file names and flags
	Label  string // for tables
	Conns  int
	Size   int
	Window int
}

// Scenarios are the load shapes of issue 10, smallest messages first.
var Scenarios = []Scenario{
	{Name: "64x16B", Label: "64 conns × 16 B, 16 in flight", Conns: 64, Size: 16, Window: 16},
	{Name: "64x1KiB", Label: "64 conns × 1 KiB, 16 in flight", Conns: 64, Size: 1024, Window: 16},
	{Name: "1000x2000B", Label: "1,000 conns × 2,000 B, 1 in flight", Conns: 1000, Size: 2000, Window: 1},
	{Name: "4x64KiB", Label: "4 conns × 64 KiB, 4 in flight", Conns: 4, Size: 64 << 10, Window: 4},
	{Name: "1x1MiB", Label: "1 conn × 1 MiB, 2 in flight", Conns: 1, Size: 1 << 20, Window: 2},
}

// LookupScenario returns the scenario called name.
func LookupScenario(name string) (Scenario, bool) {
	for _, s := range Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}
