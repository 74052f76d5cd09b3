package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/store"
)

// TestActor is who tests make changes as.
var TestActor = store.Actor{Kind: "user", Name: "admin@contoso.com"}

// ActivateConnector creates a connector and makes its first revision the
// active one, marking it validated through the store (the Validate step
// has its own tests). It returns the connector's id.
func ActivateConnector(t testing.TB, st *store.Store, spec connector.Spec) int64 {
	t.Helper()
	ctx := context.Background()
	c, err := st.CreateConnector(ctx, TestActor, spec, true)
	if err != nil {
		t.Fatalf("create connector: %v", err)
	}
	if err := st.MarkValidated(ctx, TestActor, spec.Direction(), c.ID, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Activate(ctx, TestActor, spec.Direction(), c.ID, 1); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// AfterReload runs a configuration change and waits until the live
// routing index has been rebuilt from a load that began after the change
// was committed. (A change of several commits signals several reloads; one
// may start between them, so the helper asks for one more and waits for a
// load that began after the last commit. Automatic propagation itself is
// tested end to end in internal/e2e.)
func AfterReload(t testing.TB, live *liveconfig.Config, change func()) {
	t.Helper()
	change()
	committed := time.Now()
	live.Reload()
	deadline := committed.Add(10 * time.Second)
	for !live.LoadedSince(committed) {
		if time.Now().After(deadline) {
			t.Fatal("routing index not rebuilt within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
