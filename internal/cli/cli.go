// Package cli is flowgate's command line: serve (the default), migrate,
// admin create, token create and version.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
)

// Env is what a command reads from its surroundings.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

const usage = `flowgate — a self-hosted mail gateway

Usage:
  flowgate [serve] [flags]                      run the console, API and relay (default)
  flowgate migrate [flags]                      apply database migrations and exit
  flowgate admin create --email E --password P  add an admin user
  flowgate token create --name NAME [--role R]  print a new API token (last line)
  flowgate version                              print the version

Every command takes the configuration flags; run "flowgate serve -h" to list them.
`

// errUsage marks a usage error (exit status 2).
var errUsage = errors.New("usage")

// Run runs the command in args (without the program name).
func Run(ctx context.Context, args []string, env Env) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, env)
	case "migrate":
		return migrate(ctx, args, env)
	case "admin":
		if len(args) == 0 || args[0] != "create" {
			fmt.Fprint(env.Stderr, "usage: flowgate admin create --email E --password P [--role admin|viewer]\n")
			return errUsage
		}
		return adminCreate(ctx, args[1:], env)
	case "token":
		if len(args) == 0 || args[0] != "create" {
			fmt.Fprint(env.Stderr, "usage: flowgate token create --name NAME [--role admin|viewer]\n")
			return errUsage
		}
		return tokenCreate(ctx, args[1:], env)
	case "version":
		fmt.Fprintln(env.Stdout, "flowgate", app.Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return nil
	}
	fmt.Fprintf(env.Stderr, "flowgate: unknown command %q\n\n%s", cmd, usage)
	return errUsage
}

// ExitCode maps Run's error to a process exit status.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	}
	return 1
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// parse registers the configuration flags (and extra) on a new flag set.
func parse(name string, args []string, env Env, extra func(fs *flag.FlagSet)) (*config.Config, error) {
	fs := flag.NewFlagSet("flowgate "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	load := config.Flags(fs, env.Getenv)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "flowgate %s: unexpected argument %q\n", name, fs.Arg(0))
		return nil, errUsage
	}
	return load()
}

func serve(ctx context.Context, args []string, env Env) error {
	cfg, err := parse("serve", args, env, nil)
	if err != nil {
		return err
	}
	tuneGC(env.Getenv)
	return app.Serve(ctx, cfg, newLogger(env.Stderr), nil)
}

// serveGCPercent is the garbage collector's target for flowgate serve when
// GOGC is not set: the heap may grow to five times what is live before a
// collection, instead of twice. The relay's live heap is small (a few MB
// plus the messages in flight) while every message allocates a copy of its
// content, so with Go's default it collected many times a second under
// load. At 400, flowgate used 10–20% less CPU per message in the end-to-end
// benchmark, for a peak resident size of 109 MB instead of 60 MB at 32
// sessions (docs/perf.md, "Memory and the GC target"). GOGC and
// GOMEMLIMIT set in the environment are honoured as Go documents them.
const serveGCPercent = 400

func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
}

func openMigrated(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.Store, error) {
	st, err := app.OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

func migrate(ctx context.Context, args []string, env Env) error {
	cfg, err := parse("migrate", args, env, nil)
	if err != nil {
		return err
	}
	log := newLogger(env.Stderr)
	st, err := openMigrated(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	cur, _, err := st.SchemaStatus(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "database schema is at version %d (%s)\n", cur, st.Dialect())
	return nil
}

func adminCreate(ctx context.Context, args []string, env Env) error {
	var email, password, role string
	cfg, err := parse("admin create", args, env, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the admin's e-mail address")
		fs.StringVar(&password, "password", "", "the admin's password (at least 12 characters)")
		fs.StringVar(&role, "role", "admin", "admin or viewer")
	})
	if err != nil {
		return err
	}
	st, err := openMigrated(ctx, cfg, newLogger(env.Stderr))
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := st.CreateUser(ctx, store.System("cli"), email, password, store.Role(role))
	if err != nil {
		return describe(err)
	}
	fmt.Fprintf(env.Stdout, "created %s user %s\n", u.Role, u.Email)
	return nil
}

func tokenCreate(ctx context.Context, args []string, env Env) error {
	var name, role string
	cfg, err := parse("token create", args, env, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "a name for the token, like ci-pipeline")
		fs.StringVar(&role, "role", "admin", "admin (may change) or viewer (reads only)")
	})
	if err != nil {
		return err
	}
	st, err := openMigrated(ctx, cfg, newLogger(env.Stderr))
	if err != nil {
		return err
	}
	defer st.Close()
	token, t, err := st.CreateToken(ctx, store.System("cli"), name, store.Role(role))
	if err != nil {
		return describe(err)
	}
	fmt.Fprintf(env.Stdout, "created %s token %q; it is shown only once:\n%s\n", t.Role, t.Name, token)
	return nil
}

// describe turns field errors into a readable error.
func describe(err error) error {
	var fe connector.FieldErrors
	if errors.As(err, &fe) {
		msg := ""
		for k, v := range fe {
			msg += fmt.Sprintf("\n  --%s: %s", k, v)
		}
		return fmt.Errorf("invalid input:%s", msg)
	}
	return err
}

// Main is the process entry point: it returns the exit status.
func Main(ctx context.Context) int {
	env := Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	err := Run(ctx, os.Args[1:], env)
	if err != nil && !errors.Is(err, errUsage) {
		fmt.Fprintln(os.Stderr, "flowgate:", err)
	}
	return ExitCode(err)
}
