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
	noise := fs.Float64("noise", 0, "vector: relative noise added to the identity (0.1 = another photo of the same face)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if args[0] == "vector" {
		return json.NewEncoder(stdout).Encode(synth.Vector(*dim, *seed, *noise, rand.Uint64()))
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
