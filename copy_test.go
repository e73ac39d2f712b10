package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The presence files and module.go copy into another program without
// main.go, config.go or the chat example: that program builds with its own
// main and its own configuration.
func TestCopyableIntoAnotherProgram(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "main.go" || f == "config.go" || f == "chat.go" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if f == "go.mod" {
			b = []byte(strings.Replace(string(b), "module rtm", "module example.com/app", 1))
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	app := `package main

import (
	"context"
	"net"
	"os"
)

func main() {
	srv, err := New(ServerOptions{RedisURL: os.Getenv("REDIS")})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	_ = srv.Run(context.Background(), ln)
}
`
	if err := os.WriteFile(filepath.Join(dir, "app.go"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	// The module of the README's "Writing a module" builds against the
	// copied files as it is written there.
	example := readmeExample(t, "## Writing a module")
	example = "package main\n\nimport (\n\t\"context\"\n\t\"encoding/json\"\n\t\"net/http\"\n)\n\n" + example +
		"\nvar _ Module = (*Polls)(nil)\n"
	if err := os.WriteFile(filepath.Join(dir, "polls.go"), []byte(example), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "app"), ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the copied files do not build on their own: %v\n%s", err, out)
	}
}

// readmeExample returns the first Go code block of the README after the
// line heading.
func readmeExample(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README has no %q", heading)
	}
	_, rest, ok = strings.Cut(rest, "```go\n")
	code, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("README has no Go block under %q", heading)
	}
	return code
}
