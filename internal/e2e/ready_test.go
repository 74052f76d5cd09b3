package e2e

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// readyz waits (up to 10 s) until /readyz answers want, and returns the text.
func readyz(t *testing.T, p *proc, want int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + p.HTTP + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return string(body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz answers %d %q, want %d", resp.StatusCode, body, want)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("/readyz: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mountTmpfs mounts a small tmpfs of its own for the test (as root), or
// skips the test where that is not allowed.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s): the full and read-only data directory cases need one", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// immutable makes dir refuse new files (chattr +i: not even root may
// create one), as a read-only file system would, or lets it take them
// again. (A file system cannot be remounted read-only while the database
// file is open for writing.)
func immutable(t *testing.T, dir string, on bool) {
	t.Helper()
	flag := "-i"
	if on {
		flag = "+i"
	}
	if out, err := exec.Command("chattr", flag, dir).CombinedOutput(); err != nil {
		t.Fatalf("chattr %s %s: %v: %s", flag, dir, err, out)
	}
}

// fill writes to dir until the file system is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	name := filepath.Join(dir, "filler")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return name
		}
	}
}

// /readyz answers 503 while flowgate cannot accept mail — its SQLite data
// directory full or read-only — and 200 again once it can.
func TestReadyzFollowsTheDataDirectory(t *testing.T) {
	dir := mountTmpfs(t, "24m")
	env := baseEnv{"FLOWGATE_DATA_DIR=" + dir}
	p := start(t, env, "FLOWGATE_MAX_MESSAGE_SIZE=1048576")
	readyz(t, p, 200)

	filler := fill(t, dir)
	if text := readyz(t, p, 503); !strings.Contains(text, "is full") {
		t.Fatalf("full data directory: %q", text)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	readyz(t, p, 200)

	immutable(t, dir, true)
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", dir).Run() })
	if text := readyz(t, p, 503); !strings.Contains(text, "not writable") {
		t.Fatalf("read-only data directory: %q", text)
	}
	immutable(t, dir, false)
	readyz(t, p, 200)
	p.kill()
	<-p.finished
}

// /readyz answers 503 while PostgreSQL is unreachable or refuses writes
// (the relay answers 451 then), and 200 once it is back.
func TestReadyzFollowsPostgres(t *testing.T) {
	dbURL := testutil.PostgresDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testutil.NewProxy(t, u.Host)
	u.Host = proxy.Addr
	p := start(t, baseEnv{"FLOWGATE_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + u.String()})
	readyz(t, p, 200)
	proxy.Cut()
	if text := readyz(t, p, 503); !strings.Contains(text, "database unreachable") {
		t.Fatalf("database down: %q", text)
	}
	proxy.Restore()
	readyz(t, p, 200)

	// Read-only: every new session of the database refuses writes.
	st := testutil.OpenStoreWith(t, store.Options{DatabaseURL: dbURL})
	name := strings.TrimPrefix(u.Path, "/")
	setReadOnly := func(on bool) {
		v := "off"
		if on {
			v = "on"
		}
		if err := st.DB().Exec("ALTER DATABASE " + name + " SET default_transaction_read_only = " + v).Error; err != nil {
			t.Fatal(err)
		}
		proxy.Cut() // flowgate's sessions end; its new ones take the setting
		proxy.Restore()
	}
	setReadOnly(true)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		text := readyz(t, p, 503)
		if strings.Contains(text, "read-only") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("read-only database: %q", text)
		}
	}
	setReadOnly(false)
	readyz(t, p, 200)
}
