// Package e2e runs the real flowgate binary: crash safety of the queue and
// live configuration across processes.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flowgate-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "flowgate")
	out, err := exec.Command("go", "build", "-o", binary, "../../cmd/flowgate").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a running `flowgate serve`.
type proc struct {
	t        testing.TB
	cmd      *exec.Cmd
	env      []string
	HTTP     string
	SMTP     string
	logs     *bytes.Buffer
	logMu    *sync.Mutex
	finished chan struct{} // closed when the process has exited
	exitErr  error
}

// baseEnv is the database part of a process's environment.
type baseEnv []string

func (e baseEnv) run(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), e...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("flowgate %v: %v\n%s", args, err, stderr)
	}
	return string(out)
}

// token creates an admin API token.
func (e baseEnv) token(t testing.TB) string {
	lines := strings.Split(strings.TrimSpace(e.run(t, "token", "create", "--name", "e2e")), "\n")
	return lines[len(lines)-1]
}

func start(t testing.TB, env baseEnv, extra ...string) *proc {
	t.Helper()
	p := &proc{t: t, HTTP: freePort(t), SMTP: freePort(t), logs: &bytes.Buffer{}, logMu: &sync.Mutex{}, finished: make(chan struct{})}
	p.env = append(append([]string{}, env...), "FLOWGATE_HTTP_ADDR="+p.HTTP, "FLOWGATE_SMTP_ADDR="+p.SMTP, "FLOWGATE_HOSTNAME=gw.e2e.test")
	p.env = append(p.env, extra...)
	p.cmd = exec.Command(binary, "serve")
	p.cmd.Env = append(os.Environ(), p.env...)
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.logMu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.logMu.Unlock()
		}
	}()
	go func() { p.exitErr = p.cmd.Wait(); close(p.finished) }()
	t.Cleanup(func() { p.kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.HTTP + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-p.finished:
			t.Fatalf("flowgate exited during start: %v\n%s", p.exitErr, p.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("flowgate not ready within 30s\n%s", p.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

func (p *proc) log() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.logs.String()
}

func (p *proc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-p.finished:
		case <-time.After(10 * time.Second):
		}
	}
}

// api calls the JSON API and decodes the answer into out (if not nil).
func (p *proc) api(token, method, path string, body any, out any) int {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, "http://"+p.HTTP+"/api/v1"+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			p.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	if resp.StatusCode >= 400 {
		p.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode
}
