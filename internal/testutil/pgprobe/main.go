// Command pgprobe tells, before the tests run, whether the PostgreSQL
// server for the tests is reachable, so that skipped PostgreSQL tests are
// visible in a plain `go test` run's output.
package main

import (
	"fmt"
	"os"

	"github.com/flowgate/flowgate/internal/testutil"
)

func main() {
	if err := testutil.PostgresReachable(); err != nil {
		if os.Getenv(testutil.RequirePostgresEnv) == "1" {
			fmt.Printf("PostgreSQL: NOT reachable at %s (%v); %s=1, so the PostgreSQL tests will FAIL\n", testutil.PostgresAdminURL(), err, testutil.RequirePostgresEnv)
			return
		}
		fmt.Printf("PostgreSQL: NOT reachable at %s (%v)\nPostgreSQL: the PostgreSQL tests will be SKIPPED; set %s to a server to run them\n", testutil.PostgresAdminURL(), err, testutil.PostgresURLEnv)
		return
	}
	fmt.Printf("PostgreSQL: reachable at %s; the PostgreSQL tests will run\n", testutil.PostgresAdminURL())
}
