package prometheus_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ecows/ecows/metrics"
	ecowsprom "github.com/ecows/ecows/metrics/prometheus"
)

// ExampleNewCollector registers what ecows counts in a program's own Prometheus registry and
// serves it with promhttp. In a server, g is handshake.ServerOptions.Metrics (with
// router.Handle, which labels it with the chi route) and hub.Options.Metrics; here two
// handshakes are recorded by hand.
func ExampleNewCollector() {
	g := new(metrics.Registry)
	g.Handshake("/chat/{room}", http.StatusSwitchingProtocols, "")
	g.Handshake("/chat/{room}", http.StatusForbidden, "origin")

	reg := prometheus.NewRegistry()
	reg.MustRegister(ecowsprom.NewCollector(g))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "ecows_handshakes_total") {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// ecows_handshakes_total{reason="",route="/chat/{room}",status="101"} 1
	// ecows_handshakes_total{reason="origin",route="/chat/{room}",status="403"} 1
}
