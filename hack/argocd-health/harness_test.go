package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

const root = "../../argocd/resource_customizations"

// TestLuaHealthScript is Argo CD's test of the same name, run on our tree.
func TestLuaHealthScript(t *testing.T) {
	cases, err := Collect(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			o := Run(c)
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			if *o.Got != c.Expected {
				t.Errorf("open libs: got %s, want %s", *o.Got, c.Expected)
			}
			if *o.GotSafe != c.Expected {
				t.Errorf("safe libs: got %s, want %s", *o.GotSafe, c.Expected)
			}
		})
	}
}

func run(t *testing.T, vm VM, obj map[string]any, script string) *HealthStatus {
	t.Helper()
	hs, err := vm.ExecuteHealthLua(obj, script)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

func TestInvalidStatusIsUnknown(t *testing.T) {
	got := run(t, VM{}, nil, `return {status = "Fine", message = "x"}`)
	if want := (HealthStatus{"Unknown", invalidHealthStatus}); *got != want {
		t.Fatalf("got %s, want %s", *got, want)
	}
}

func TestNonTableIsAnError(t *testing.T) {
	if _, err := (VM{}).ExecuteHealthLua(nil, `return "Healthy"`); err == nil || !strings.Contains(err.Error(), "expect table output") {
		t.Fatalf("got %v", err)
	}
}

func TestTimeout(t *testing.T) {
	start := time.Now()
	_, err := (VM{}).ExecuteHealthLua(nil, `while true do end`)
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d < Timeout || d > 5*Timeout {
		t.Fatalf("stopped after %v", d)
	}
}

func TestLibraries(t *testing.T) {
	probe := `return {status = "Healthy", message = type(string) .. " " .. type(math) .. " " .. type(os.time()) .. " " .. type(os.exit) .. " " .. type(table.insert) .. " " .. type(require("os").date)}`
	if got := run(t, VM{UseOpenLibs: false}, nil, probe); got.Message != "nil nil number nil function function" {
		t.Errorf("without open libs: %s", got.Message)
	}
	if got := run(t, VM{UseOpenLibs: true}, nil, probe); got.Message != "table table number function function function" {
		t.Errorf("with open libs: %s", got.Message)
	}
	if _, err := (VM{}).ExecuteHealthLua(nil, `return {status = string.format("%s", "Healthy")}`); err == nil {
		t.Error("string library available without open libs")
	}
}

func TestObjectConversion(t *testing.T) {
	obj := map[string]any{"metadata": map[string]any{"generation": int64(3)}, "a": []any{"x", nil, 1.5}, "b": true}
	// gopher-lua's Append skips nil, so a null array item shifts the rest down, as in Argo CD.
	got := run(t, VM{}, obj, `return {status = "Healthy", message = tostring(obj.metadata.generation) .. " " .. obj.a[1] .. " " .. tostring(obj.a[2]) .. " " .. tostring(obj.b) .. " " .. tostring(obj.c)}`)
	if got.Message != "3 x 1.5 true nil" {
		t.Fatalf("got %q", got.Message)
	}
}

// Edge cases of the CloudSyncProfile script that the real manifests in testdata/ do not reach.
func TestCloudSyncProfileEdges(t *testing.T) {
	script, err := os.ReadFile(root + "/cloudsync.io/CloudSyncProfile/health.lua")
	if err != nil {
		t.Fatal(err)
	}
	cond := func(typ, status, reason, message string, gen float64) map[string]any {
		return map[string]any{"type": typ, "status": status, "reason": reason, "message": message, "observedGeneration": gen}
	}
	profile := func(gen float64, observed any, conditions ...any) map[string]any {
		status := map[string]any{"conditions": conditions}
		if observed != nil {
			status["observedGeneration"] = observed
		}
		return map[string]any{
			"apiVersion": "cloudsync.io/v1alpha1", "kind": "CloudSyncProfile",
			"metadata": map[string]any{"name": "p", "generation": gen},
			"status":   status,
		}
	}
	for _, tc := range []struct {
		name string
		obj  map[string]any
		want HealthStatus
	}{
		{"empty status", map[string]any{"metadata": map[string]any{"generation": 1.0}, "status": map[string]any{}},
			HealthStatus{"Progressing", "Waiting for the operator"}},
		{"no Ready condition", profile(1, 1.0, cond("CredentialsValid", "True", "Authenticated", "ok", 1)),
			HealthStatus{"Progressing", "Waiting for the operator"}},
		{"Ready behind, status current", profile(2, 2.0, cond("Ready", "True", "Ready", "ok", 1)),
			HealthStatus{"Progressing", "Waiting for the operator to observe generation 2"}},
		{"only Ready's observedGeneration", profile(2, nil, cond("Ready", "True", "Ready", "ok", 2)),
			HealthStatus{"Healthy", "ok"}},
		{"stale Degraded is ignored", profile(2, 2.0,
			cond("Ready", "False", "Retrying", "retrying after a temporary failure: x", 2),
			cond("Degraded", "True", "Quarantined", "old", 1)),
			HealthStatus{"Progressing", "retrying after a temporary failure: x"}},
		{"stale Suspended is ignored", profile(2, 2.0,
			cond("Ready", "False", "NotRunning", "AD2AADProvisioning is Paused (schedule Active)", 2),
			cond("Suspended", "True", "SuspendRequested", "old", 1)),
			HealthStatus{"Progressing", "AD2AADProvisioning is Paused (schedule Active)"}},
		{"Suspended wins over a credential problem", profile(1, 1.0,
			cond("Ready", "False", "SecretNotFound", "create the Secret", 1),
			cond("Suspended", "True", "SuspendRequested", "paused", 1)),
			HealthStatus{"Suspended", "paused"}},
		{"Degraded wins over Ready=True", profile(1, 1.0,
			cond("Ready", "True", "Ready", "ok", 1),
			cond("Degraded", "True", "ExecutionFailed", "failed", 1)),
			HealthStatus{"Degraded", "failed"}},
		{"each user-action reason", profile(1, 1.0, cond("Ready", "False", "WorkloadIdentityNotAllowed", "", 1)),
			HealthStatus{"Degraded", "WorkloadIdentityNotAllowed"}},
		{"unknown reason", profile(1, 1.0, cond("Ready", "False", "SomethingNew", "new", 1)),
			HealthStatus{"Progressing", "new"}},
		{"Ready Unknown", profile(1, 1.0, cond("Ready", "Unknown", "SecretNotFound", "?", 1)),
			HealthStatus{"Progressing", "?"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, open := range []bool{false, true} {
				if got := run(t, VM{UseOpenLibs: open}, tc.obj, string(script)); *got != tc.want {
					t.Errorf("open libs %v: got %s, want %s", open, *got, tc.want)
				}
			}
		})
	}
	for _, reason := range []string{"SecretNotFound", "SecretInvalid", "NoCredentials", "WorkloadIdentityNotAllowed",
		"WorkloadIdentityUnavailable", "CredentialsRejected", "GraphUnauthorized", "GraphForbidden",
		"GraphRequestRejected", "AmbiguousServicePrincipal", "CleanupBlocked"} {
		if got := run(t, VM{}, profile(1, 1.0, cond("Ready", "False", reason, "m", 1)), string(script)); got.Status != "Degraded" {
			t.Errorf("%s: got %s", reason, *got)
		}
	}
	for _, reason := range []string{"Creating", "WaitingForCredentials", "InstantiatePending", "JobsMissing",
		"NotRunning", "NoServicePrincipal", "Retrying", "Suspended"} {
		if got := run(t, VM{}, profile(1, 1.0, cond("Ready", "False", reason, "m", 1)), string(script)); got.Status != "Progressing" {
			t.Errorf("%s: got %s", reason, *got)
		}
	}
}
