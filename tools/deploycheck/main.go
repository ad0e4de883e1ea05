// deploycheck: deploy/'s files checked by their tools' own code, without Docker or a Kubernetes cluster.
//
//	deploycheck compose FILE...   load a compose file the way `docker compose` does (compose-go v2: interpolation,
//	                              the Compose Specification's JSON schema, normalisation, consistency: every
//	                              service, volume and network named is declared) and print the services found
//	deploycheck kustomize DIR     build a kustomization the way `kubectl apply -k` does (kustomize's krusty): every
//	                              resource file read and parsed, no two objects with one kind, namespace and name,
//	                              images rewritten; print the objects built
//	deploycheck kustomize DIR --yaml   … and then the objects themselves, as kubectl apply -k would send them
//
// Exit status 0: valid; 1: the loader's or the builder's error, printed on stderr; 2: usage.
// Used by tests/unit/test_deploy_files.py (built once into the state folder) and by hand (deploy/README.md).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: deploycheck compose FILE... | deploycheck kustomize DIR")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "compose":
		err = checkCompose(os.Args[2:])
	case "kustomize":
		err = checkKustomize(os.Args[2], len(os.Args) > 3 && os.Args[3] == "--yaml")
	default:
		fmt.Fprintf(os.Stderr, "deploycheck: unknown command %q (compose or kustomize)\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploycheck %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// checkCompose loads the files as one project with compose's own loader: what `docker compose config` would refuse,
// this refuses with the same message. Variables come from the environment and an .env file beside the first file,
// as with docker compose; unset ones take the file's defaults.
func checkCompose(files []string) error {
	dir, err := filepath.Abs(filepath.Dir(files[0]))
	if err != nil {
		return err
	}
	options, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(dir),
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithConsistency(true),
		cli.WithNormalization(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return err
	}
	project, err := cli.ProjectFromOptions(context.Background(), options)
	if err != nil {
		return err
	}
	names := project.ServiceNames()
	sort.Strings(names)
	fmt.Printf("compose project %q: %d services (%s)\n", project.Name, len(names), strings.Join(names, ", "))
	return nil
}

// checkKustomize builds the kustomization in dir with kustomize's own builder (no plugins, no network).
func checkKustomize(dir string, printYAML bool) error {
	kustomizer := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := kustomizer.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return err
	}
	kinds := map[string]int{}
	for _, r := range resources.Resources() {
		kinds[r.GetKind()]++
	}
	var parts []string
	for kind, n := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", n, kind))
	}
	sort.Strings(parts)
	fmt.Printf("kustomization %s: %d objects (%s)\n", dir, len(resources.Resources()), strings.Join(parts, ", "))
	if printYAML {
		built, err := resources.AsYaml()
		if err != nil {
			return err
		}
		fmt.Print(string(built))
	}
	return nil
}
