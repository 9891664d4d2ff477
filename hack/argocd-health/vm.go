package main

// The Lua runtime of Argo CD's health checks (argo-cd util/lua/lua.go, runLua and
// ExecuteHealthLua), reproduced on the same libraries Argo CD v3.5 uses: github.com/yuin/gopher-lua
// v1.1.2 (Lua 5.1) and layeh.com/gopher-json for the returned table. Argo CD itself is not a
// dependency: from v3.4 on its module cannot be resolved from the Go module proxy.
//
// The rules reproduced:
//   - a fresh LState per evaluation; the standard libraries are opened only with UseOpenLibs
//     (Argo's tests and built-in scripts use it; an argocd-cm override does not unless
//     resource.customizations.useOpenLibs.<group>_<kind> is true);
//   - whatever UseOpenLibs says, the package, base and table libraries and a "safe" os (time and
//     date only, also preloaded for require("os")) are opened;
//   - the object is the global `obj`, converted from its JSON form (numbers are Lua numbers,
//     arrays are 1-based sequences, null is nil);
//   - a 1 second deadline on the whole script;
//   - the script must return a table; it is JSON-encoded with gopher-json and decoded into
//     {status, message};
//   - a status other than Healthy, Progressing, Degraded, Suspended, Missing or Unknown becomes
//     Unknown "Lua returned an invalid health status".

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

// Timeout is Argo CD's deadline for one script run.
const Timeout = 1 * time.Second

const invalidHealthStatus = "Lua returned an invalid health status"

// HealthStatus is Argo CD's health.HealthStatus (same JSON names).
type HealthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

func (h HealthStatus) String() string { return fmt.Sprintf("%s %q", h.Status, h.Message) }

var validStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

// VM runs health scripts the way Argo CD does.
type VM struct {
	UseOpenLibs bool
}

// ExecuteHealthLua runs script with obj as the global `obj` and returns the health it reports.
func (vm VM) ExecuteHealthLua(obj map[string]any, script string) (*HealthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !vm.UseOpenLibs})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, fmt.Errorf("opening Lua library %q: %w", lib.name, err)
		}
	}
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), safeOsFuncs))
		return 1
	})

	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type().String())
	}
	encoded, err := luajson.Encode(ret)
	if err != nil {
		return nil, err
	}
	var hs HealthStatus
	if err := json.Unmarshal(encoded, &hs); err != nil {
		return nil, err
	}
	if !validStatuses[hs.Status] {
		return &HealthStatus{Status: "Unknown", Message: invalidHealthStatus}, nil
	}
	return &hs, nil
}

// toLua converts a decoded JSON (or unstructured) value to a Lua value as Argo CD does: the
// controller hands int64 for integers, JSON decoding float64; both are Lua numbers.
func toLua(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case json.Number:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case int32:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
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
	default:
		return lua.LNil
	}
}

// The "safe" os library: only time and date, as in Argo CD.
var safeOsFuncs = map[string]lua.LGFunction{"time": osTime, "date": osDate}

func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.OsLibName, safeOsFuncs))
	return 1
}

// os.time([t]): now, or the time described by table t (local time zone).
func osTime(l *lua.LState) int {
	if l.GetTop() == 0 {
		l.Push(lua.LNumber(time.Now().Unix()))
		return 1
	}
	t := l.CheckTable(1)
	field := func(name string, def int) int {
		if n, ok := t.RawGetString(name).(lua.LNumber); ok {
			return int(n)
		}
		return def
	}
	at := time.Date(field("year", -1), time.Month(field("month", -1)), field("day", -1),
		field("hour", 12), field("min", 0), field("sec", 0), 0, time.Local)
	l.Push(lua.LNumber(at.Unix()))
	return 1
}

// os.date([format [, t]]): "*t" (or "!*t") gives a table, other formats a strftime-like string.
func osDate(l *lua.LState) int {
	at := time.Now()
	format := "%c"
	if l.GetTop() >= 1 {
		format = l.CheckString(1)
	}
	if l.GetTop() >= 2 {
		at = time.Unix(l.CheckInt64(2), 0)
	}
	if rest, ok := strings.CutPrefix(format, "!"); ok {
		at, format = at.UTC(), rest
	}
	if format == "*t" {
		t := l.NewTable()
		for k, v := range map[string]int{
			"year": at.Year(), "month": int(at.Month()), "day": at.Day(), "hour": at.Hour(),
			"min": at.Minute(), "sec": at.Second(), "wday": int(at.Weekday()) + 1, "yday": at.YearDay(),
		} {
			t.RawSetString(k, lua.LNumber(v))
		}
		t.RawSetString("isdst", lua.LFalse)
		l.Push(t)
		return 1
	}
	l.Push(lua.LString(strftime(at, format)))
	return 1
}

var strftimeLayouts = map[byte]string{
	'a': "Mon", 'A': "Monday", 'b': "Jan", 'B': "January", 'c': "Mon Jan  2 15:04:05 2006",
	'd': "02", 'F': "2006-01-02", 'H': "15", 'I': "03", 'm': "01", 'M': "04", 'p': "PM",
	'S': "05", 'T': "15:04:05", 'x': "01/02/06", 'X': "15:04:05", 'y': "06", 'Y': "2006",
	'z': "-0700", 'Z': "MST",
}

func strftime(at time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		switch f := format[i]; {
		case f == '%':
			b.WriteByte('%')
		case strftimeLayouts[f] != "":
			b.WriteString(at.Format(strftimeLayouts[f]))
		default:
			b.WriteByte('%')
			b.WriteByte(f)
		}
	}
	return b.String()
}
