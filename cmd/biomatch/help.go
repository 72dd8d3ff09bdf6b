package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// help is what `biomatch <command> -h` prints around the flags.
type help struct {
	usage   string // the synopsis, after "usage: biomatch "
	about   string // what it does; its arguments
	example string
}

var helps = map[string]help{
	"serve": {"serve [--with-worker]",
		"Runs the HTTP API on LISTEN_ADDR (metrics on METRICS_ADDR). With --with-worker the enroll\nworker and the HNSW index maintenance run in the same process. Configuration: the\nenvironment variables in README.md.",
		"biomatch serve --with-worker"},
	"worker": {"worker",
		"Runs the enroll worker (asynq, on REDIS_URL), the reconciler of stale enrolls and the\nHNSW index maintenance. Run as many as you like.",
		"biomatch worker"},
	"migrate": {"migrate",
		"Applies the embedded database migrations (forward only) to DATABASE_URL.",
		"biomatch migrate"},
	"apikey create": {"apikey create --customer NAME [--min-encryption 1|3] [--api-id ID] [--usage-plan-id ID] [--product-code CODE]",
		"Creates an API key for a customer (tenant) and prints it once, alone on the last line.\nOnly its hash is stored.",
		"KEY=$(biomatch apikey create --customer acme | tail -1)"},
	"apikey list": {"apikey list [--customer NAME]",
		"Lists keys: id, display prefix, customer, status (never the key).",
		"biomatch apikey list --customer acme"},
	"apikey revoke": {"apikey revoke ID|PREFIX",
		"Revokes a key, named by its id or its (unique) display prefix. Every replica refuses it\nwithin 5 s.",
		"biomatch apikey revoke bm_3EJ75"},
	"apikey import": {"apikey import --customer NAME [KEY ...]",
		"Stores keys your CryptoNets clients already hold, from the arguments or one per line on\nstdin.",
		"biomatch apikey import --customer acme < keys.txt"},
	"client check": {"client check --key KEY [--url URL]",
		"Asks the server whether the key is valid.", "biomatch client check --key \"$KEY\""},
	"client enroll": {"client enroll --key KEY --vector-file FILE [--version V] [--enc 1|2|3] [--key-id ID] [--user-identifier ID]",
		"Enrolls the embedding in FILE (a JSON array of floats, or {\"embedding_vector\": [...]}),\nencrypted as the PrivateID SDKs do, and prints the reply with puid and guid decrypted.",
		"biomatch client enroll --key \"$KEY\" --vector-file alice.json"},
	"client predict": {"client predict --key KEY --vector-file FILE [--version V] [--enc 1|2|3] [--k N] [--user-identifier ID]",
		"Identifies the embedding in FILE (top --k), or with --user-identifier verifies it against\nthat person only.",
		"biomatch client predict --key \"$KEY\" --vector-file alice-again.json --k 2"},
	"client delete": {"client delete --key KEY --puid PUID [--version V] [--enc 1|2|3]",
		"Deletes a person and its templates.", "biomatch client delete --key \"$KEY\" --puid \"$PUID\""},
	"client sync": {"client sync --key KEY --puid PUID[,PUID...] [--version V] [--enc 1|2|3]",
		"Prints the enroll level of each puid (0: unknown).", "biomatch client sync --key \"$KEY\" --puid \"$PUID\""},
	"client session": {"client session --key KEY [--operations enroll,predict] [--user-identifier ID] [--max-uses N] [--ttl 10m]",
		"Native API: mints a short-lived session key for a browser page (shown once). The page's\nSDK uses it as its api_key; your tenant key never reaches the page.",
		"biomatch client session --key \"$KEY\" --operations enroll,predict --user-identifier alice"},
	"client enrollment": {"client enrollment --key KEY --id ID",
		"Native API: prints an enrollment's state (pending, done, failed) by the id every enroll\nreturns (x-enroll-request-id on /node).",
		"biomatch client enrollment --key \"$KEY\" --id \"$ENROLLMENT\""},
	"client identify": {"client identify --key KEY --vector-file FILE [--version V] [--k N] [--security-level L]",
		"Native API: the top --k persons of the gallery for the embedding in FILE, with the\ndecision's level, threshold and error rates.",
		"biomatch client identify --key \"$KEY\" --vector-file alice-again.json --k 3"},
	"client verify": {"client verify --key KEY --vector-file FILE --user-identifier ID|--puid PUID [--version V] [--security-level L]",
		"Native API: compares the embedding in FILE with one person only.",
		"biomatch client verify --key \"$KEY\" --vector-file alice-again.json --user-identifier alice"},
	"client persons": {"client persons --key KEY (--user-identifier ID | --version V [--limit N] [--cursor C])",
		"Native API: finds persons by user_identifier, or lists a gallery a page at a time.",
		"biomatch client persons --key \"$KEY\" --version FACE3_1 --limit 50"},
	"client webhook": {"client webhook --key KEY --webhook-url URL [--events enrollment.completed,enrollment.failed,person.deleted]",
		"Native API: registers a webhook endpoint and prints its signing secret (shown once).",
		"biomatch client webhook --key \"$KEY\" --webhook-url https://app.example/hooks/biomatch"},
	"client deliveries": {"client deliveries --key KEY --webhook ID",
		"Native API: lists a webhook's newest deliveries and every attempt's outcome.",
		"biomatch client deliveries --key \"$KEY\" --webhook \"$WEBHOOK\""},
	"client token": {"client token --client-id ID --client-secret SECRET [--url URL]",
		"Native API: exchanges OAuth2 client credentials (apikey create --oauth) for a bearer token,\nwhich --key accepts in the native API commands.",
		"biomatch client token --client-id \"$CLIENT_ID\" --client-secret \"$CLIENT_SECRET\""},
	"client vector": {"client vector [--dim 512] [--seed N] [--noise 0.0]",
		"Prints a synthetic, normalised embedding: one seed is one synthetic identity, --noise\nmakes another \"photo\" of it. Never a real face.",
		"biomatch client vector --seed 42 --noise 0.3 > alice-again.json"},
	"import": {"import --tenant T [--version FACE3_1] [--batch 500] [--ids IDS.txt] [--restart] FILE",
		"Bulk-loads a gallery. FILE is JSONL, one {\"external_id\": \"...\", \"embedding\": [...]} per\nline (external_id optional), or a .npy matrix (float32 or float64, one template per row;\nexternal ids from --ids, one per line). Each template is validated and deduplicated as an\nenroll is, in batches; an interrupted import resumes where it stopped (--restart ignores\nthe checkpoint). The HNSW index is built once, at the end.",
		"biomatch import --tenant acme --version FACE3_1 gallery.jsonl"},
	"export": {"export --tenant T [--version FACE3_1] [--with-embeddings] [FILE]",
		"Writes a gallery's persons as JSONL to FILE (default: stdout); their templates only with\n--with-embeddings (biometric data: handle it as such).",
		"biomatch export --tenant acme > acme.jsonl"},
	"healthcheck": {"healthcheck [--url URL | --deps]",
		"Exits 0 when healthy: by default it asks an API's /ready; with --deps it pings PostgreSQL\nand Redis itself (for the worker). Container health checks use it.",
		"biomatch healthcheck --url http://127.0.0.1:8000/ready"},
}

// newFlagSet returns the flag set of command (a key of helps) whose -h
// prints the command's synopsis, description, flags and example on out,
// and whose Parse then returns flag.ErrHelp (run answers it with exit 0).
// Flag errors go to errOut.
func newFlagSet(command string, out, errOut io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.SetOutput(errOut)
	h := helps[command]
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: biomatch %s\n\n%s\n", h.usage, h.about)
		var flags strings.Builder
		fs.SetOutput(&flags)
		fs.PrintDefaults()
		fs.SetOutput(errOut)
		if flags.Len() > 0 {
			fmt.Fprintf(out, "\nflags:\n%s", flags.String())
		}
		fmt.Fprintf(out, "\nexample:\n  %s\n", h.example)
	}
	return fs
}

// usageOf lists the subcommands of group (apikey, client) for a bare or -h call.
func usageOf(group string) string {
	var b strings.Builder
	b.WriteString("usage:\n")
	for _, sub := range subcommands[group] {
		fmt.Fprintf(&b, "  biomatch %s\n", helps[group+" "+sub].usage)
	}
	fmt.Fprintf(&b, "\n`biomatch %s <subcommand> -h` explains one.\n", group)
	return b.String()
}

// subcommand checks the subcommand of group (apikey, client) in args:
// none or unknown is an error listing them, -h prints that list (done).
func subcommand(group string, args []string, std stdio) (done bool, err error) {
	switch {
	case len(args) == 0:
		return true, fmt.Errorf("%s", usageOf(group))
	case isHelp(args[0]):
		fmt.Fprint(std.out, usageOf(group))
		return true, nil
	}
	if _, ok := helps[group+" "+args[0]]; !ok {
		return true, fmt.Errorf("unknown subcommand %q\n%s", args[0], usageOf(group))
	}
	return false, nil
}

var subcommands = map[string][]string{
	"apikey": {"create", "list", "revoke", "import"},
	"client": {"check", "enroll", "predict", "delete", "sync", "vector", "session", "enrollment", "identify", "verify",
		"persons", "webhook", "deliveries", "token"},
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}
