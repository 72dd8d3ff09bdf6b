package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/biomatch/biomatch/client"
	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/internal/synth"
)

func runClient(ctx context.Context, args []string, std stdio) error {
	if done, err := subcommand("client", args, std); done {
		return err
	}
	stdout := std.out
	fs := newFlagSet("client "+args[0], std.out, std.err)
	url := fs.String("url", "http://127.0.0.1:8000", "server base URL")
	key := fs.String("key", "", "API key")
	keyID := fs.String("key-id", "", "the key's id, for --enc 3 (apikey create prints it)")
	version := fs.String("version", "FACE3_1", "gallery version (the {version} route segment)")
	enc := fs.Int("enc", 2, "x-encryption-version: 1 or 2 (CryptoNets), 3 (authenticated; needs --key-id)")
	vectorFile := fs.String("vector-file", "", "JSON file with the embedding")
	k := fs.Int("k", 1, "predict: how many candidates (K)")
	userID := fs.String("user-identifier", "", "enroll: the person's id in your system; predict: verify against that person")
	puid := fs.String("puid", "", "delete/sync: the person's puid (sync: comma-separated)")
	dim := fs.Int("dim", 512, "vector: dimension")
	seed := fs.Uint64("seed", 1, "vector: the seed (one seed = one synthetic identity)")
	level := fs.String("security-level", "", "predict: ask for this security level (no laxer than the key's); the reply's headers say which decided")
	ops := fs.String("operations", "enroll,predict", "session: what the session key may do")
	maxUses := fs.Int("max-uses", 0, "session: how many requests (0: the server's default, 10)")
	ttl := fs.Duration("ttl", 0, "session: lifetime (0: the server's default, 10m)")
	id := fs.String("id", "", "enrollment: its id")
	limit := fs.Int("limit", 100, "persons: page size")
	cursor := fs.String("cursor", "", "persons: the next_cursor of the previous page")
	hookURL := fs.String("webhook-url", "", "webhook: the endpoint's https URL")
	events := fs.String("events", "enrollment.completed,enrollment.failed,person.deleted", "webhook: events to send")
	hookID := fs.String("webhook", "", "deliveries: the webhook's id")
	clientID := fs.String("client-id", "", "token: OAuth2 client id")
	clientSecret := fs.String("client-secret", "", "token: OAuth2 client secret")
	noise := fs.Float64("noise", 0, "vector: relative noise added to the identity (0.1 = another photo of the same face)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if args[0] == "vector" {
		return json.NewEncoder(stdout).Encode(synth.Vector(*dim, *seed, *noise, rand.Uint64()))
	}
	show := func(v any) error {
		e := json.NewEncoder(stdout)
		e.SetIndent("", "  ")
		return e.Encode(v)
	}
	if args[0] == "token" {
		token, ttl, err := client.Token(ctx, *url, *clientID, *clientSecret)
		if err != nil {
			return err
		}
		return show(map[string]any{"access_token": token, "expires_in": int(ttl.Seconds())})
	}
	if native := nativeCommand(args[0]); native {
		if *key == "" {
			return fmt.Errorf("--key is required: the tenant's API key or an access token (biomatch client %s -h explains)", args[0])
		}
		v1 := &client.V1{BaseURL: *url, Token: *key}
		var out any
		var err error
		switch args[0] {
		case "session":
			out, err = v1.CreateSession(ctx, client.SessionOptions{Operations: strings.Split(*ops, ","), UserIdentifier: *userID,
				MaxUses: *maxUses, TTLSeconds: int(ttl.Seconds())})
		case "enrollment":
			out, err = v1.Enrollment(ctx, *id)
		case "identify", "verify":
			var v []float32
			if v, err = readVector(*vectorFile); err != nil {
				return err
			}
			if args[0] == "identify" {
				out, err = v1.Identify(ctx, *version, v, *k, *level)
			} else {
				person := *userID
				if *puid != "" {
					person = *puid
				}
				out, err = v1.Verify(ctx, *version, person, v, *level)
			}
		case "persons":
			if *userID != "" {
				out, err = v1.FindPersons(ctx, *userID, "")
			} else {
				ps, next, perr := v1.Persons(ctx, *version, *limit, *cursor)
				out, err = map[string]any{"persons": ps, "next_cursor": next}, perr
			}
		case "webhook":
			out, err = v1.CreateWebhook(ctx, *hookURL, strings.Split(*events, ","))
		case "deliveries":
			out, err = v1.Deliveries(ctx, *hookID)
		}
		if err != nil {
			return err
		}
		return show(out)
	}
	if *key == "" {
		return fmt.Errorf("--key is required (biomatch client %s -h explains)", args[0])
	}
	if *enc < 1 || *enc > 3 {
		return fmt.Errorf("--enc must be 1, 2 or 3")
	}
	c := &client.Client{BaseURL: *url, APIKey: *key, KeyID: *keyID, Version: *version, Enc: crypto.Version(*enc), SecurityLevel: *level}
	var reply client.Reply
	var err error
	switch args[0] {
	case "check":
		reply, err = c.CheckKey(ctx)
	case "enroll", "predict":
		var v []float32
		if v, err = readVector(*vectorFile); err != nil {
			return err
		}
		if args[0] == "enroll" {
			reply, err = c.Enroll(ctx, v, *userID)
		} else {
			reply, err = c.Predict(ctx, v, *k, *userID)
		}
	case "delete":
		if *puid == "" {
			return fmt.Errorf("--puid is required")
		}
		reply, err = c.Delete(ctx, *puid)
	case "sync":
		reply, err = c.SyncUUID(ctx, strings.Split(*puid, ","))
	}
	if err != nil {
		return err
	}
	enc2 := json.NewEncoder(stdout)
	enc2.SetIndent("", "  ")
	return enc2.Encode(reply)
}

func readVector(path string) ([]float32, error) {
	if path == "" {
		return nil, fmt.Errorf("--vector-file is required")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v []float32
	if err := json.Unmarshal(raw, &v); err == nil {
		return v, nil
	}
	var obj struct {
		EmbeddingVector []float32 `json:"embedding_vector"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || len(obj.EmbeddingVector) == 0 {
		return nil, fmt.Errorf("%s: want a JSON array of floats or {\"embedding_vector\": [...]}", path)
	}
	return obj.EmbeddingVector, nil
}

// nativeCommand reports whether a client subcommand speaks /v1.
func nativeCommand(name string) bool {
	switch name {
	case "session", "enrollment", "identify", "verify", "persons", "webhook", "deliveries":
		return true
	}
	return false
}
