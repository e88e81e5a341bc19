package wstest_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/ecows/ecows/internal/wstest"
)

// A Buffer as a logger's destination: the test reads what was logged so far while other
// goroutines may still be logging.
func ExampleBuffer() {
	var logs wstest.Buffer
	logger := log.New(&logs, "", 0)
	logger.Print("connection opened")
	fmt.Println(strings.Contains(logs.String(), "opened"))
	// Output: true
}
