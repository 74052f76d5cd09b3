package console_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// Item 7: an API token's last use is recorded, at most once a minute.
func TestTokenLastUsedIsRecorded(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		token, tok, err := st.CreateToken(ctx, store.System("test"), "ci", store.RoleViewer)
		if err != nil {
			t.Fatal(err)
		}
		srv := serve(t, st, false)
		call := func() {
			req, _ := http.NewRequest("GET", srv.URL+"/api/v1/accepted-domains", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("API call: %d", resp.StatusCode)
			}
		}
		lastUsed := func() *time.Time {
			list, err := st.ListTokens(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range list {
				if x.ID == tok.ID {
					return x.LastUsedAt
				}
			}
			t.Fatal("token gone")
			return nil
		}
		if lastUsed() != nil {
			t.Fatal("a new token has a last use")
		}
		before := time.Now().Add(-time.Second)
		call()
		first := lastUsed()
		if first == nil || first.Before(before) || first.After(time.Now().Add(time.Second)) {
			t.Fatalf("last used after a call: %v", first)
		}
		call()
		call()
		if again := lastUsed(); again == nil || !again.Equal(*first) {
			t.Fatalf("last used rewritten within a minute: %v, then %v", first, again)
		}
	})
}
