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
// Configuration comes from environment variables (see README.md).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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
`

// run is the whole program: everything it needs comes in as arguments.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("missing command")
	}
	cmd, rest := args[1], args[2:]
	if cmd == "client" {
		return runClient(ctx, rest, stdout)
	}
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	switch cmd {
	case "serve":
		return runServe(ctx, cfg, rest, stderr)
	case "worker":
		return runWorker(ctx, cfg, rest, stderr)
	case "migrate":
		return runMigrate(ctx, cfg, stdout)
	case "apikey":
		return runAPIKey(ctx, cfg, rest, stdin, stdout)
	case "healthcheck":
		return runHealthcheck(ctx, cfg, rest)
	case "import":
		return runImport(ctx, cfg, rest, stderr)
	case "export":
		return runExport(ctx, cfg, rest, stdout)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
