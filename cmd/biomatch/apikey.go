package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/httpapi"
	"github.com/biomatch/biomatch/internal/app"
	"github.com/biomatch/biomatch/postgres"
)

func runAPIKey(ctx context.Context, config func() (app.Config, error), args []string, std stdio) error {
	if done, err := subcommand("apikey", args, std); done {
		return err
	}
	stdin, stdout := std.in, std.out
	fs := newFlagSet("apikey "+args[0], std.out, std.err)
	var o postgres.KeyOptions
	fs.StringVar(&o.CustomerID, "customer", "", "customer (tenant) the key belongs to")
	fs.StringVar(&o.APIID, "api-id", "", "CryptoNets api_id")
	fs.StringVar(&o.UsagePlanID, "usage-plan-id", "", "CryptoNets usage_plan_id")
	fs.StringVar(&o.ProductCode, "product-code", "", "CryptoNets product_code")
	fs.IntVar(&o.MinEncryption, "min-encryption", 1, "lowest x-encryption-version the key may use (3: authenticated only; needs MASTER_KEY)")
	oauth := fs.Bool("oauth", false, "create: print the key as OAuth2 client credentials (client_id, client_secret) for POST /v1/oauth/token")
	fs.StringVar(&o.SecurityLevel, "security-level", "", "the key's security level, and the laxest its requests may ask for: low, medium, high, very_high or highest (default: the server's)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := config()
	if err != nil {
		return err
	}
	if cal := cfg.Engine.Levels.Calibration; o.SecurityLevel != "" {
		if _, ok := cal.Level(o.SecurityLevel); !ok {
			return fmt.Errorf("--security-level %q: unknown level; want one of %s", o.SecurityLevel, cal.LevelNames())
		}
	}
	pool, err := postgres.OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	ks := postgres.NewKeys(pool, cfg.MasterKey)

	switch args[0] {
	case "create":
		secret, k, err := ks.Create(ctx, o)
		if err != nil {
			return err
		}
		if *oauth {
			fmt.Fprintf(stdout, "created OAuth2 client for customer %s (POST /v1/oauth/token, grant_type=client_credentials); the secret is shown once:\n", k.CustomerID)
			fmt.Fprintf(stdout, "client_id=%s\nclient_secret=%s\n", k.ID, secret)
			return nil
		}
		fmt.Fprintf(stdout, "created key %s (prefix %s) for customer %s; it is shown once:\n", k.ID, k.Prefix, k.CustomerID)
		fmt.Fprintln(stdout, secret) // alone on the last line: scripts read it from there
		return nil
	case "list":
		list, err := ks.List(ctx, o.CustomerID)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPREFIX\tCUSTOMER\tSTATUS\tLEVEL\tCREATED")
		for _, k := range list {
			level := k.SecurityLevel
			if level == "" {
				level = "(server's)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, k.CustomerID, k.Status, level, k.CreatedAt.Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return fmt.Errorf("%s", usageOf("apikey"))
		}
		k, err := ks.Revoke(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked key %s (prefix %s); replicas stop accepting it within %s\n", k.ID, k.Prefix, httpapi.KeyCacheTTL)
		return nil
	case "import":
		secrets := fs.Args()
		if len(secrets) == 0 {
			sc := bufio.NewScanner(stdin)
			for sc.Scan() {
				if s := strings.TrimSpace(sc.Text()); s != "" {
					secrets = append(secrets, s)
				}
			}
			if err := sc.Err(); err != nil {
				return err
			}
		}
		for _, s := range secrets {
			k, err := ks.Import(ctx, s, o)
			if err != nil {
				return fmt.Errorf("import key %s…: %w", crypto.KeyPrefix(s), err)
			}
			fmt.Fprintf(stdout, "imported key %s (prefix %s) for customer %s\n", k.ID, k.Prefix, k.CustomerID)
		}
		return nil
	}
	return fmt.Errorf("%s", usageOf("apikey"))
}
