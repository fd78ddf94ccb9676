package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

// HealthStatus is what a health script returns (Argo CD's health.HealthStatus).
type HealthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// ResourceAction is one entry a discovery script returns (Argo CD's ResourceAction,
// the fields this harness checks).
type ResourceAction struct {
	Name     string `json:"name"`
	Disabled bool   `json:"disabled,omitempty"`
}

var validHealth = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true,
	"Healthy": true, "Degraded": true, "Missing": true,
}

// newState builds the sandbox Argo CD gives scripts from argocd-cm.
func newState() *lua.LState {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		// Argo CD "opens" its safe os by registering time/date under the table module's
		// name, so scripts see table.time but no global os.
		{lua.OsLibName, func(l *lua.LState) int {
			l.Push(l.RegisterModule(lua.TabLibName, safeOs))
			return 1
		}},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true},
			lua.LString(lib.name)); err != nil {
			panic(err)
		}
	}
	// `local os = require("os")` is how a script reaches time/date.
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), safeOs))
		return 1
	})
	return l
}

func run(obj map[string]any, script string) (lua.LValue, error) {
	l := newState()
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	return ret, nil
}

func toLua(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case []any:
		t := l.CreateTable(len(x), 0)
		for _, item := range x {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(x))
		for k, item := range x {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

func executeHealth(obj map[string]any, script string) (*HealthStatus, error) {
	ret, err := run(obj, script)
	if err != nil {
		return nil, err
	}
	raw, err := luajson.Encode(ret)
	if err != nil {
		return nil, err
	}
	hs := &HealthStatus{}
	if err := json.Unmarshal(raw, hs); err != nil {
		return nil, err
	}
	if !validHealth[hs.Status] {
		// What Argo CD shows for a status it does not know.
		return &HealthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return hs, nil
}

func executeAction(obj map[string]any, script string) (map[string]any, error) {
	ret, err := run(obj, script)
	if err != nil {
		return nil, err
	}
	raw, err := luajson.Encode(ret)
	if err != nil {
		return nil, err
	}
	if len(raw) > 0 && raw[0] == '[' {
		return nil, fmt.Errorf("action returned a list (new-style impacted resources); this harness checks patch actions only")
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	return restoreEmptyObjects(out, obj), nil
}

// restoreEmptyObjects undoes gopher-json's encoding of an empty table as [] where the
// input had an object, as Argo CD does before patching.
func restoreEmptyObjects(out, in map[string]any) map[string]any {
	for k, nv := range out {
		ov, ok := in[k]
		if !ok {
			continue
		}
		switch n := nv.(type) {
		case map[string]any:
			if o, ok := ov.(map[string]any); ok {
				out[k] = restoreEmptyObjects(n, o)
			}
		case []any:
			if o, ok := ov.(map[string]any); ok && len(n) == 0 {
				out[k] = o
			}
		}
	}
	return out
}

func executeDiscovery(obj map[string]any, script string) ([]ResourceAction, error) {
	ret, err := run(obj, script)
	if err != nil {
		return nil, err
	}
	raw, err := luajson.Encode(ret)
	if err != nil {
		return nil, err
	}
	actions := []ResourceAction{}
	if string(raw) == "[]" {
		return actions, nil
	}
	var byName map[string]any
	if err := json.Unmarshal(raw, &byName); err != nil {
		return nil, err
	}
	for name, v := range byName {
		a := ResourceAction{Name: name}
		if m, ok := v.(map[string]any); ok {
			if d, ok := m["disabled"].(bool); ok {
				a.Disabled = d
			}
		}
		actions = append(actions, a)
	}
	return actions, nil
}
