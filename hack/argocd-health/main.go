// Command argocd-health runs the Argo CD health checks under a resource_customizations tree on
// the Lua VM Argo CD uses, like Argo CD's own TestLuaHealthScript.
//
//	cd hack/argocd-health && go run . ../../argocd/resource_customizations
//
// It prints one line per case and exits 1 if any case's status or message differs from its
// health_test.yaml (2 on a usage or layout error).
package main

import (
	"fmt"
	"os"
)

func main() {
	root := "../../argocd/resource_customizations"
	switch len(os.Args) {
	case 1:
	case 2:
		root = os.Args[1]
	default:
		fmt.Fprintln(os.Stderr, "usage: argocd-health [resource_customizations dir]")
		os.Exit(2)
	}
	_, failed, err := Report(root, func(format string, a ...any) { fmt.Printf(format, a...) })
	if err != nil {
		fmt.Fprintf(os.Stderr, "argocd-health: %v\n", err)
		os.Exit(2)
	}
	if failed > 0 {
		os.Exit(1)
	}
}
