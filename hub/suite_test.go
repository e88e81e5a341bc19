package hub_test

import (
	"testing"

	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/hub/hubtest"
)

// busEngine runs the conformance suite on the in-process Bus.
type busEngine struct{ bus *hub.Bus }

func (e busEngine) Link(testing.TB) hub.Broker { return e.bus.Link() }

func (e busEngine) Subscriptions(_ testing.TB, topic string) int { return e.bus.Subscribers(topic) }

func TestBusConformance(t *testing.T) { hubtest.Run(t, busEngine{hub.NewBus()}) }

func TestFakeConformance(t *testing.T) { hubtest.Run(t, hubtest.NewFake()) }
