// Command flowgate is a self-hosted mail gateway: SMTP relay, connector
// routing, admin console and JSON API in one binary.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/flowgate/flowgate/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// A second signal forces exit.
		<-ctx.Done()
		stop()
		force := make(chan os.Signal, 1)
		signal.Notify(force, os.Interrupt, syscall.SIGTERM)
		<-force
		fmt.Fprintln(os.Stderr, "flowgate: second signal, exiting now")
		os.Exit(1)
	}()
	code := cli.Main(ctx)
	stop()
	os.Exit(code)
}
