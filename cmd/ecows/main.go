package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/ecows/ecows/internal/xconnect" // WebSockets over HTTP/2 for serve -tls-*
)

const usage = `usage: ecows <command> [arguments]

commands:
  serve   run an echo server with a browser page at /
  dial    open a WebSocket and exchange messages from the terminal
  bench   load-test a WebSocket echo server

Run "ecows <command> -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command: it dispatches to a subcommand and returns the exit code, 2 for
// bad usage. ctx ends when the process is asked to stop.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "dial":
		return runDial(ctx, args[1:], stdin, stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "ecows: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// errUsage is returned for a bad command line once it has been reported with the command's
// usage; it makes the exit code 2.
var errUsage = errors.New("bad usage")

// newFlagSet returns a FlagSet for command that prints its errors and usage to stderr.
func newFlagSet(command, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: ecows %s %s\n\nflags:\n", command, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args with fs, allowing flags before and after the positional arguments
// ("ecows dial URL -H ...") until "--", and checks that there is one positional argument per
// name in names. Errors other than flag.ErrHelp are reported and returned as errUsage.
func parse(fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage // the flag package has reported it
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < len(names):
		return nil, usagef(fs, "missing %s", names[len(pos)])
	case len(pos) > len(names):
		return nil, usagef(fs, "unexpected argument %q", pos[len(names)])
	}
	return pos, nil
}

// usagef reports a bad command line with fs's usage and returns errUsage.
func usagef(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "ecows %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return errUsage
}

// exitCode reports err from a subcommand on stderr and turns it into an exit code: 0 for
// none or -h, 2 for a bad command line (already reported), 1 otherwise.
func exitCode(command string, err error, stderr io.Writer) int {
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "ecows %s: %v\n", command, err)
	return 1
}
