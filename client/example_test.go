package client_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/biomatch/biomatch/client"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/internal/teststack"
	"github.com/biomatch/biomatch/postgres"
)

// serverURL and apiKey belong to a real biomatch started by TestMain.
var serverURL, apiKey string

func TestMain(m *testing.M) {
	db, err := testenv.Lookup("DATABASE_URL")
	if err == nil {
		var redisURL string
		if redisURL, err = testenv.Lookup("REDIS_URL"); err == nil {
			var stack *teststack.Stack
			if stack, err = teststack.Start(db, redisURL, teststack.Options{}); err == nil {
				serverURL = stack.URL
				apiKey, _, err = stack.Keys.Create(context.Background(), postgres.KeyOptions{CustomerID: "example"})
				code := m.Run()
				stack.Stop()
				os.Exit(code)
			}
		}
	}
	fmt.Fprintln(os.Stderr, "client tests need the real stack:", err)
	os.Exit(1)
}

// Example enrolls a face, identifies another photo of it, and deletes it.
func Example() {
	ctx := context.Background()
	c := &client.Client{BaseURL: serverURL, APIKey: apiKey, Version: "FACE3_1", Enc: 2}

	// Embeddings come from the device's SDK; here, synthetic ones.
	enrolled, err := c.Enroll(ctx, synth.Vector(512, 1, 0, 0), "user-42")
	if err != nil {
		panic(err)
	}
	fmt.Println("enroll:", enrolled.Status, enrolled.Message, "level", enrolled.EnrollLevel)

	found, _ := c.Predict(ctx, synth.Vector(512, 1, 0.3, 7), 1, "")
	fmt.Println("identify: same person:", found.PUID == enrolled.PUID, "score above 0.9:", found.Score > 0.9)

	deleted, _ := c.Delete(ctx, enrolled.PUID)
	fmt.Println("delete:", deleted.Status, deleted.Message)

	gone, _ := c.Predict(ctx, synth.Vector(512, 1, 0.3, 8), 1, "")
	fmt.Println("identify again:", gone.Status, gone.Message)
	// Output:
	// enroll: 0 Ok level 1
	// identify: same person: true score above 0.9: true
	// delete: 0 ok
	// identify again: -1 User not enrolled
}

// TestBillingRecord: the SDKs' billing call is acknowledged as CryptoNets does.
func TestBillingRecord(t *testing.T) {
	c := &client.Client{BaseURL: serverURL, APIKey: apiKey, Version: "FACE3_1", Enc: 2}
	r, err := c.AddBillingRecord(context.Background())
	if err != nil || r.HTTPStatus != 200 || r.Status != 0 || r.Message != "Success" {
		t.Errorf("AddBillingRecord = %+v, %v; want 200 Success", r, err)
	}
}
