// Command dashboard-validate checks Grafana dashboard JSON files against Grafana's own
// dashboard schema, as the Grafana Foundation SDK publishes it (Go types generated from
// the schemas Grafana itself ships, Apache-2.0): the dashboard is decoded strictly, so
// an unknown field, a field of the wrong type or a missing required field fails, then
// the schema's validation constraints are checked. Panel options are checked with the
// schema of their panel plugin and every query with the Prometheus data source's query
// schema; a panel of a type without a registered schema fails (add its package below).
//
// Usage: dashboard-validate FILE...   (exit 1 and one line per finding when invalid)
//
// Built and cached by scripts/build-go-tool.sh; run by tests/unit/test_chart_dashboard_schema.py.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// panelTypes are the panel plugins whose option schemas are registered.
var panelTypes = map[string]bool{"timeseries": true, "stat": true, "row": true}

func register() {
	runtime := cog.NewRuntime()
	runtime.RegisterPanelcfgVariant(timeseries.VariantConfig())
	runtime.RegisterPanelcfgVariant(stat.VariantConfig())
	runtime.RegisterDataqueryVariant(prometheus.VariantConfig())
}

// shape is just enough of a dashboard to list its panels and their types.
type shape struct {
	Panels []struct {
		Type   string `json:"type"`
		Panels []struct {
			Type string `json:"type"`
		} `json:"panels"`
	} `json:"panels"`
}

func check(raw []byte) []string {
	var findings []string
	var s shape
	var panels struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return []string{err.Error()}
	}
	if err := json.Unmarshal(raw, &panels); err != nil {
		return []string{err.Error()}
	}
	unknown := map[string]bool{}
	for _, p := range s.Panels {
		unknown[p.Type] = !panelTypes[p.Type]
		for _, inner := range p.Panels {
			unknown[inner.Type] = !panelTypes[inner.Type]
		}
	}
	var types []string
	for t, bad := range unknown {
		if bad {
			types = append(types, t)
		}
	}
	sort.Strings(types)
	for _, t := range types {
		findings = append(findings, fmt.Sprintf("panel type %q: no schema registered in dashboard-validate", t))
	}
	var d dashboard.Dashboard
	if err := d.UnmarshalJSONStrict(raw); failed(err) {
		return append(findings, err.Error())
	}
	if err := d.Validate(); failed(err) {
		findings = append(findings, err.Error())
	}
	// The SDK's strict decoding reports a panel's errors but leaves the panel out of the
	// decoded dashboard (v0.0.22 returns an empty error list as a non-nil error), so its
	// constraints are checked here, panel by panel (decoding errors were reported above).
	for i, rawPanel := range panels.Panels {
		var err error
		if s.Panels[i].Type == "row" {
			var row dashboard.RowPanel
			if failed(row.UnmarshalJSONStrict(rawPanel)) {
				continue
			}
			err = row.Validate()
		} else {
			var panel dashboard.Panel
			if failed(panel.UnmarshalJSONStrict(rawPanel)) {
				continue
			}
			err = panel.Validate()
		}
		if failed(err) {
			findings = append(findings, fmt.Sprintf("panels[%d]: %v", i, err))
		}
	}
	return findings
}

// failed: err is an error (the SDK can return an empty cog.BuildErrors as a non-nil error)
func failed(err error) bool {
	var list cog.BuildErrors
	if errors.As(err, &list) {
		return len(list) > 0
	}
	return err != nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashboard-validate FILE...")
		os.Exit(2)
	}
	register()
	failed := false
	for _, path := range os.Args[1:] {
		raw, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		findings := check(raw)
		for _, f := range findings {
			fmt.Printf("%s: %s\n", path, f)
		}
		if len(findings) > 0 {
			failed = true
		} else {
			fmt.Printf("%s: valid\n", path)
		}
	}
	if failed {
		os.Exit(1)
	}
}
