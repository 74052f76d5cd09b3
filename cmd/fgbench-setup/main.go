// Command fgbench-setup prepares a flowgate database for the end-to-end
// benchmark (scripts/bench-e2e.sh): an accepted domain and an outbound
// connector for all accepted domains pointing at a smart host, made active
// directly through the store. It bypasses the Validate step on purpose —
// the benchmark's sink is smtp-sink — and is a benchmark tool, not part of
// the product. It reads DATABASE_URL and FLOWGATE_DATA_DIR like flowgate.
//
//	go run ./cmd/fgbench-setup -domain bench.test -smart-host 127.0.0.1:2600
//
// With -other-domain and -other-host it also adds a second accepted domain
// with a partner connector of its own to another host (the fault scripts
// point it at a next hop that hangs).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
)

func main() {
	domain := flag.String("domain", "bench.test", "accepted domain the load sends to")
	smartHost := flag.String("smart-host", "127.0.0.1:2600", "where the connector delivers (smtp-sink)")
	otherDomain := flag.String("other-domain", "", "a second accepted domain, with a connector of its own")
	otherHost := flag.String("other-host", "", "where the second domain's connector delivers")
	flag.Parse()
	if err := run(*domain, *smartHost, *otherDomain, *otherHost); err != nil {
		fmt.Fprintln(os.Stderr, "fgbench-setup:", err)
		os.Exit(1)
	}
}

func run(domain, smartHost, otherDomain, otherHost string) error {
	ctx := context.Background()
	dataDir := os.Getenv("FLOWGATE_DATA_DIR")
	if dataDir == "" {
		dataDir = "./data"
	}
	st, err := store.Open(ctx, store.Options{DatabaseURL: os.Getenv("DATABASE_URL"), DataDir: dataDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	actor := store.System("fgbench-setup")
	if _, err := st.CreateAcceptedDomain(ctx, actor, domain, connector.Authoritative); err != nil {
		return err
	}
	if err := activate(ctx, st, actor, &connector.OutboundSpec{
		Common:             connector.Common{Name: "Benchmark sink", ConnectorType: connector.OnPremises},
		AllAcceptedDomains: true, SmartHosts: []string{smartHost},
	}); err != nil {
		return err
	}
	fmt.Printf("accepted domain %s, connector %q → %s (active)\n", domain, "Benchmark sink", smartHost)
	if otherDomain == "" {
		return nil
	}
	if _, err := st.CreateAcceptedDomain(ctx, actor, otherDomain, connector.Authoritative); err != nil {
		return err
	}
	if err := activate(ctx, st, actor, &connector.OutboundSpec{
		Common:           connector.Common{Name: "Other host", ConnectorType: connector.Partner},
		RecipientDomains: []string{otherDomain}, SmartHosts: []string{otherHost},
	}); err != nil {
		return err
	}
	fmt.Printf("accepted domain %s, connector %q → %s (active)\n", otherDomain, "Other host", otherHost)
	return nil
}

// activate creates a connector with revision 1 active.
func activate(ctx context.Context, st *store.Store, actor store.Actor, spec *connector.OutboundSpec) error {
	c, err := st.CreateConnector(ctx, actor, spec, true)
	if err != nil {
		return err
	}
	if err := st.MarkValidated(ctx, actor, connector.Outbound, c.ID, 1); err != nil {
		return err
	}
	_, err = st.Activate(ctx, actor, connector.Outbound, c.ID, 1)
	return err
}
