// Command argocd-lua runs Argo CD resource customizations (health checks and resource
// actions written in Lua) the way Argo CD runs them, and checks them against Argo CD's
// upstream test layout:
//
//	<group>/<Kind>/health.lua
//	<group>/<Kind>/health_test.yaml            tests: [{inputPath, healthStatus: {status, message}}]
//	<group>/<Kind>/actions/discovery.lua
//	<group>/<Kind>/actions/<name>/action.lua
//	<group>/<Kind>/actions/action_test.yaml    discoveryTests: [...], actionTests: [...]
//
// The runtime is set up as Argo CD's util/lua sets it up for scripts configured in
// argocd-cm (useOpenLibs unset): gopher-lua with SkipOpenLibs, then only the package,
// base and table libraries opened; Argo CD's "safe os" (time, date) is reachable only
// through `local os = require("os")` (Argo CD registers it under the table module, so
// there is no global `os`); the object is passed as the global `obj`; the result is
// encoded to JSON with layeh.com/gopher-json, as Argo CD does; a script has one second.
//
// The one deliberate difference: ARGOCD_LUA_NOW (Unix seconds), when set, fixes the
// clock os.time/os.date read, so expected outputs of actions that stamp the time are
// exact.
//
// Usage:
//
//	argocd-lua test DIR...                 run every health_test.yaml / action_test.yaml under DIR
//	argocd-lua health SCRIPT OBJECT.yaml   print the health a script returns (JSON)
//	argocd-lua action SCRIPT OBJECT.yaml   print the object an action returns (JSON)
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "test":
		err = runTests(os.Args[2:])
	case "health", "action", "discovery":
		if len(os.Args) != 4 {
			usage()
		}
		err = runOne(os.Args[1], os.Args[2], os.Args[3])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: argocd-lua test DIR... | argocd-lua {health|action|discovery} SCRIPT OBJECT.yaml")
	os.Exit(2)
}

func runOne(kind, script, objPath string) error {
	src, err := os.ReadFile(script)
	if err != nil {
		return err
	}
	obj, err := readObject(objPath)
	if err != nil {
		return err
	}
	var out any
	switch kind {
	case "health":
		out, err = executeHealth(obj, string(src))
	case "action":
		out, err = executeAction(obj, string(src))
	case "discovery":
		out, err = executeDiscovery(obj, string(src))
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func readObject(path string) (map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

// --------------------------------------------------------------------------- tests

type healthTests struct {
	Tests []struct {
		InputPath    string       `json:"inputPath"`
		HealthStatus HealthStatus `json:"healthStatus"`
	} `json:"tests"`
}

type actionTests struct {
	DiscoveryTests []struct {
		InputPath string           `json:"inputPath"`
		Result    []ResourceAction `json:"result"`
	} `json:"discoveryTests"`
	ActionTests []struct {
		Action             string `json:"action"`
		InputPath          string `json:"inputPath"`
		ExpectedOutputPath string `json:"expectedOutputPath"`
	} `json:"actionTests"`
}

type result struct{ passed, failed int }

func (r *result) check(name string, err error) {
	if err != nil {
		r.failed++
		fmt.Printf("FAIL %s\n     %s\n", name, strings.ReplaceAll(err.Error(), "\n", "\n     "))
		return
	}
	r.passed++
	fmt.Printf("ok   %s\n", name)
}

func runTests(dirs []string) error {
	var r result
	found := 0
	for _, root := range dirs {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch d.Name() {
			case "health_test.yaml":
				found++
				return runHealthTests(filepath.Dir(path), &r)
			case "action_test.yaml":
				found++
				return runActionTests(filepath.Dir(path), &r)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if found == 0 {
		return fmt.Errorf("no health_test.yaml or action_test.yaml under %v", dirs)
	}
	fmt.Printf("%d passed, %d failed\n", r.passed, r.failed)
	if r.failed > 0 {
		return fmt.Errorf("%d test(s) failed", r.failed)
	}
	return nil
}

func runHealthTests(dir string, r *result) error {
	var spec healthTests
	if err := readYAML(filepath.Join(dir, "health_test.yaml"), &spec); err != nil {
		return err
	}
	if len(spec.Tests) == 0 {
		return fmt.Errorf("%s/health_test.yaml has no tests", dir)
	}
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		return err
	}
	for _, t := range spec.Tests {
		name := fmt.Sprintf("%s health %s", dir, t.InputPath)
		obj, err := readObject(filepath.Join(dir, t.InputPath))
		if err != nil {
			r.check(name, err)
			continue
		}
		got, err := executeHealth(obj, string(script))
		if err == nil && *got != t.HealthStatus {
			err = fmt.Errorf("want %+v\ngot  %+v", t.HealthStatus, *got)
		}
		r.check(name, err)
	}
	return nil
}

func runActionTests(dir string, r *result) error {
	var spec actionTests
	if err := readYAML(filepath.Join(dir, "action_test.yaml"), &spec); err != nil {
		return err
	}
	if len(spec.DiscoveryTests)+len(spec.ActionTests) == 0 {
		return fmt.Errorf("%s/action_test.yaml has no tests", dir)
	}
	for _, t := range spec.DiscoveryTests {
		name := fmt.Sprintf("%s discovery %s", dir, t.InputPath)
		r.check(name, func() error {
			script, err := os.ReadFile(filepath.Join(dir, "discovery.lua"))
			if err != nil {
				return err
			}
			obj, err := readObject(filepath.Join(dir, t.InputPath))
			if err != nil {
				return err
			}
			got, err := executeDiscovery(obj, string(script))
			if err != nil {
				return err
			}
			want := append([]ResourceAction(nil), t.Result...)
			sortActions(want)
			sortActions(got)
			if !reflect.DeepEqual(want, got) {
				return fmt.Errorf("want %+v\ngot  %+v", want, got)
			}
			return nil
		}())
	}
	for _, t := range spec.ActionTests {
		name := fmt.Sprintf("%s action %s %s", dir, t.Action, t.InputPath)
		r.check(name, func() error {
			script, err := os.ReadFile(filepath.Join(dir, t.Action, "action.lua"))
			if err != nil {
				return err
			}
			obj, err := readObject(filepath.Join(dir, t.InputPath))
			if err != nil {
				return err
			}
			want, err := readObject(filepath.Join(dir, t.ExpectedOutputPath))
			if err != nil {
				return err
			}
			got, err := executeAction(obj, string(script))
			if err != nil {
				return err
			}
			return sameJSON(want, got)
		}())
	}
	return nil
}

func readYAML(path string, into any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(raw, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func sortActions(a []ResourceAction) {
	sort.Slice(a, func(i, j int) bool { return a[i].Name < a[j].Name })
}

// sameJSON compares two objects as JSON values (Lua numbers are floats, YAML's are not).
func sameJSON(want, got map[string]any) error {
	norm := func(v any) (any, []byte, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, nil, err
		}
		var out any
		err = json.Unmarshal(b, &out)
		pretty, _ := json.MarshalIndent(out, "", "  ")
		return out, pretty, err
	}
	w, wp, err := norm(want)
	if err != nil {
		return err
	}
	g, gp, err := norm(got)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(w, g) {
		return fmt.Errorf("output differs from the expected output\nwant %s\ngot  %s", wp, gp)
	}
	return nil
}
