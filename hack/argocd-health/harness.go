package main

// The equivalent of Argo CD's TestLuaHealthScript (util/lua/health_test.go): walk a
// resource_customizations tree, and for every <group>/<Kind>/health.lua run each case of the
// sibling health_test.yaml on its testdata manifest and compare status and message exactly.
//
// Beyond what Argo CD checks, every case is run twice: with the open libraries (as Argo's test
// does) and without them (as argocd-cm runs a custom check by default), and both must agree; a
// manifest's apiVersion/kind must match the directory it is in (Argo CD looks the script up by
// group/Kind); and every file in testdata/ must be used by a case.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// TestStructure is health_test.yaml.
type TestStructure struct {
	Tests []IndividualTest `json:"tests"`
}

// IndividualTest is one case of health_test.yaml.
type IndividualTest struct {
	InputPath    string       `json:"inputPath"`
	HealthStatus HealthStatus `json:"healthStatus"`
}

// Case is one test case, located.
type Case struct {
	Name      string // <group>/<Kind>/testdata/<file>.yaml, relative to the root
	Key       string // <group>/<Kind>, the key Argo CD looks the script up by
	Script    string // path of health.lua
	InputPath string // path of the manifest
	Expected  HealthStatus
}

// Outcome is the result of one case.
type Outcome struct {
	Case
	Got     *HealthStatus // with open libraries
	GotSafe *HealthStatus // without them
	Note    string        // what Argo CD shows instead, where it does not run the script
	Err     error
}

// Failed reports whether the case failed.
func (o Outcome) Failed() bool {
	return o.Err != nil || o.Got == nil || o.GotSafe == nil || *o.Got != o.Expected || *o.GotSafe != o.Expected
}

// Collect finds every health.lua under root and the cases of its health_test.yaml, sorted by name.
func Collect(root string) ([]Case, error) {
	var cases []Case
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != "health.lua" {
			return nil
		}
		dir := filepath.Dir(path)
		key, err := filepath.Rel(root, dir)
		if err != nil {
			return err
		}
		key = filepath.ToSlash(key)
		testPath := filepath.Join(dir, "health_test.yaml")
		raw, err := os.ReadFile(testPath)
		if err != nil {
			return fmt.Errorf("every health.lua needs a health_test.yaml: %w", err)
		}
		var tests TestStructure
		if err := yaml.UnmarshalStrict(raw, &tests); err != nil {
			return fmt.Errorf("parsing %s: %w", testPath, err)
		}
		if len(tests.Tests) == 0 {
			return fmt.Errorf("%s has no tests", testPath)
		}
		used := map[string]bool{}
		for _, t := range tests.Tests {
			if t.InputPath == "" {
				return fmt.Errorf("%s: a test without inputPath", testPath)
			}
			input := filepath.Join(dir, filepath.FromSlash(t.InputPath))
			used[filepath.Clean(input)] = true
			cases = append(cases, Case{
				Name:      key + "/" + t.InputPath,
				Key:       key,
				Script:    path,
				InputPath: input,
				Expected:  t.HealthStatus,
			})
		}
		// Every manifest in testdata/ should be a case.
		entries, err := os.ReadDir(filepath.Join(dir, "testdata"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for _, e := range entries {
			p := filepath.Clean(filepath.Join(dir, "testdata", e.Name()))
			if !e.IsDir() && !used[p] {
				return fmt.Errorf("%s is not used by any test in %s", p, testPath)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("no health.lua under %s", root)
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].Name < cases[j].Name })
	return cases, nil
}

// LoadManifest reads a YAML manifest the way Argo CD's test does (sigs.k8s.io/yaml into a map).
func LoadManifest(path string) (map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return obj, nil
}

// configMapKey is Argo CD's lookup key for an object: "<group>/<Kind>", or "<Kind>" for core.
func configMapKey(obj map[string]any) string {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	group, _, found := strings.Cut(apiVersion, "/")
	if !found {
		return kind
	}
	return group + "/" + kind
}

// Run runs one case with and without the open libraries.
func Run(c Case) Outcome {
	out := Outcome{Case: c}
	script, err := os.ReadFile(c.Script)
	if err != nil {
		out.Err = err
		return out
	}
	obj, err := LoadManifest(c.InputPath)
	if err != nil {
		out.Err = err
		return out
	}
	if key := configMapKey(obj); key != c.Key {
		out.Err = fmt.Errorf("the manifest is a %s, but the script is for %s", key, c.Key)
		return out
	}
	if out.Got, err = (VM{UseOpenLibs: true}).ExecuteHealthLua(obj, string(script)); err != nil {
		out.Err = fmt.Errorf("with open libraries: %w", err)
		return out
	}
	if out.GotSafe, err = (VM{UseOpenLibs: false}).ExecuteHealthLua(obj, string(script)); err != nil {
		out.Err = fmt.Errorf("without open libraries (argocd-cm default): %w", err)
		return out
	}
	if meta, ok := obj["metadata"].(map[string]any); ok && meta["deletionTimestamp"] != nil {
		out.Note = `Argo CD shows Progressing "Pending deletion" for an object being deleted and does not run the script`
	}
	return out
}

// Report runs all cases under root, prints one line per case (and a diff per failure) and a
// closing "N passed, N failed" line. It returns the number of failures.
func Report(root string, w func(format string, a ...any)) (passed, failed int, err error) {
	cases, err := Collect(root)
	if err != nil {
		return 0, 0, err
	}
	for _, c := range cases {
		o := Run(c)
		if !o.Failed() {
			passed++
			w("ok    %s: %s\n", o.Name, o.Got)
			if o.Note != "" {
				w("      note: %s\n", o.Note)
			}
			continue
		}
		failed++
		w("FAIL  %s\n", o.Name)
		if o.Err != nil {
			w("      error: %v\n", o.Err)
		}
		w("      want:             %s\n", o.Expected)
		if o.Got != nil {
			w("      got (open libs):  %s\n", *o.Got)
		}
		if o.GotSafe != nil {
			w("      got (safe libs):  %s\n", *o.GotSafe)
		}
		if o.Got != nil && o.Got.Status == o.Expected.Status && o.Got.Message != o.Expected.Message {
			w("      message differs at byte %d\n", firstDiff(o.Got.Message, o.Expected.Message))
		}
	}
	w("argocd-health: %d passed, %d failed\n", passed, failed)
	return passed, failed, nil
}

func firstDiff(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
