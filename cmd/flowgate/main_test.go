package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil"
)

// buildBinary compiles the real flowgate binary once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "flowgate")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func run(t *testing.T, bin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func TestBinaryServeAndCommands(t *testing.T) {
	bin := buildBinary(t)
	engines := map[string]func(t *testing.T) []string{
		"sqlite": func(t *testing.T) []string {
			return []string{"FLOWGATE_DATA_DIR=" + filepath.Join(t.TempDir(), "data"), "DATABASE_URL="}
		},
		"postgres": func(t *testing.T) []string {
			return []string{"FLOWGATE_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + testutil.PostgresDatabase(t)}
		},
	}
	for name, envFor := range engines {
		t.Run(name, func(t *testing.T) {
			env := envFor(t)
			httpAddr := freeAddr(t)
			env = append(env, "FLOWGATE_HTTP_ADDR="+httpAddr)

			if out, errOut, code := run(t, bin, env, "version"); code != 0 || !strings.HasPrefix(out, "flowgate ") {
				t.Fatalf("version: %d %q %q", code, out, errOut)
			}
			if _, errOut, code := run(t, bin, env, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
				t.Fatalf("unknown command: %d %q", code, errOut)
			}
			if _, errOut, code := run(t, bin, append(env, "FLOWGATE_QUEUE_LIFETIME=soon"), "migrate"); code != 1 || !strings.Contains(errOut, "FLOWGATE_QUEUE_LIFETIME") {
				t.Fatalf("bad config: %d %q", code, errOut)
			}
			if out, errOut, code := run(t, bin, env, "migrate"); code != 0 || !strings.Contains(out, "version") {
				t.Fatalf("migrate: %d %q %q", code, out, errOut)
			}
			if _, errOut, code := run(t, bin, env, "admin", "create", "--email", "ops@contoso.com", "--password", "short"); code != 1 || !strings.Contains(errOut, "password") {
				t.Fatalf("admin create with short password: %d %q", code, errOut)
			}
			if out, errOut, code := run(t, bin, env, "admin", "create", "--email", "ops@contoso.com", "--password", "a long enough password"); code != 0 {
				t.Fatalf("admin create: %d %q %q", code, out, errOut)
			}
			out, errOut, code := run(t, bin, env, "token", "create", "--name", "ci")
			if code != 0 {
				t.Fatalf("token create: %d %q", code, errOut)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			token := lines[len(lines)-1]
			if !strings.HasPrefix(token, "fgt_") {
				t.Fatalf("token create's last line %q is not a token", token)
			}

			cmd := exec.Command(bin, "serve")
			cmd.Env = append(os.Environ(), env...)
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			logs := make(chan string, 100)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					logs <- sc.Text()
				}
				close(logs)
			}()
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			waitHTTP(t, "http://"+httpAddr+"/healthz")
			resp, err := http.Get("http://" + httpAddr + "/readyz")
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("readyz: %v %v", resp, err)
			}
			resp.Body.Close()

			req, _ := http.NewRequest("POST", "http://"+httpAddr+"/api/v1/accepted-domains", strings.NewReader(`{"domain":"contoso.com"}`))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var d map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&d)
			resp.Body.Close()
			if resp.StatusCode != 201 || d["domain"] != "contoso.com" {
				t.Fatalf("API with the CLI's token: %d %v", resp.StatusCode, d)
			}

			// SIGTERM shuts down gracefully with status 0.
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("serve exited with %v after SIGTERM", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("serve did not stop within 20s of SIGTERM")
			}
			var all []string
			for l := range logs {
				all = append(all, l)
			}
			if !strings.Contains(strings.Join(all, "\n"), "stopped") {
				t.Fatalf("no shutdown log line:\n%s", strings.Join(all, "\n"))
			}
		})
	}
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200 within 20s", url)
}
