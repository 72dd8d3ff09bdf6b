// Command biomatch runs the biometric matching service and its tools:
//
//	biomatch serve [--with-worker]   HTTP API (and the enroll worker in-process)
//	biomatch worker                  the enroll worker
//	biomatch migrate                 apply database migrations
//	biomatch apikey create|list|revoke|import
//	biomatch client check|enroll|predict|delete|sync|vector
//	biomatch import|export --tenant T [--version V] FILE
//	biomatch healthcheck [--url URL | --deps]
//
// `biomatch <command> -h` explains a command. Configuration comes from
// environment variables (see README.md); the wiring is internal/app.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/biomatch/biomatch/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "biomatch:", err)
		os.Exit(1)
	}
}

const usage = `usage: biomatch <command> [flags]

commands:
  serve [--with-worker]   run the HTTP API (and the enroll worker)
  worker                  run the enroll worker
  migrate                 apply database migrations
  apikey create|list|revoke|import
  client check|enroll|predict|delete|sync|vector
  import --tenant T [--version V] FILE     bulk-load a gallery (JSONL or .npy), resumable
  export --tenant T [--version V] [FILE]  write a gallery as JSONL
  healthcheck [--url URL | --deps]

` + "`biomatch <command> -h`" + ` explains a command; README.md lists the environment variables.
`

// stdio is a command's standard streams.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// run is the whole program: everything it needs comes in as arguments.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("missing command")
	}
	cmd, rest := args[1], args[2:]
	if isHelp(cmd) {
		fmt.Fprint(stdout, usage)
		return nil
	}
	io := stdio{stdin, stdout, stderr}
	config := func() (app.Config, error) { return app.LoadConfig(getenv) }
	var err error
	switch cmd {
	case "serve":
		collectForIndex(getenv)
		err = runServe(ctx, config, rest, io)
	case "worker":
		collectForIndex(getenv)
		err = runWorker(ctx, config, rest, io)
	case "migrate":
		err = runMigrate(ctx, config, rest, io)
	case "apikey":
		err = runAPIKey(ctx, config, rest, io)
	case "client":
		err = runClient(ctx, rest, io)
	case "healthcheck":
		err = runHealthcheck(ctx, config, rest, io)
	case "import":
		err = runImport(ctx, config, rest, io)
	case "export":
		err = runExport(ctx, config, rest, io)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil // the help was asked for, and printed
	}
	return err
}

// indexGCPercent is the garbage collector's GOGC for a process holding the
// in-memory index, unless the operator sets GOGC.
const indexGCPercent = 25

// collectForIndex sets GOGC to indexGCPercent when the environment leaves
// it unset. The index is most of the heap and lives as long as the
// process; at Go's default (100) the heap grows to twice the index before a
// collection, and every page of that growth is fresh memory the kernel must
// fault in. Measured under mixed load at a 100k gallery (bench/README.md,
// "Fresh memory"): with the default, the server took ~26,000 page faults a
// second for its first 13 s (its memory growing from 1.4 to 2.7 GB, later
// 3.0) and answered slowly until they stopped; at 25 it grew to 1.7 GB, and
// its CPU per request in steady load fell 8 %.
func collectForIndex(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(indexGCPercent)
	}
}
