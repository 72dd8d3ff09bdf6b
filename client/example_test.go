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

// ExampleV1 uses the native API: enroll, identify and verify, look the
// person up, mint a browser session key, delete.
func ExampleV1() {
	ctx := context.Background()
	v1 := &client.V1{BaseURL: serverURL, Token: apiKey}

	e, err := v1.Enroll(ctx, "FACE3_9", [][]float32{synth.Vector(512, 21, 0, 0)}, "user-21")
	if err != nil {
		panic(err)
	}
	fmt.Println("enroll:", e.State, e.Outcome, "level", e.Person.EnrollLevel)

	found, _ := v1.Identify(ctx, "FACE3_9", synth.Vector(512, 21, 0.3, 1), 3, "")
	fmt.Println("identify:", len(found.Candidates), "candidate, user", found.Candidates[0].Person.UserIdentifier, "at level", found.Decision.SecurityLevel)

	v, _ := v1.Verify(ctx, "FACE3_9", "user-21", synth.Vector(512, 21, 0.3, 2), "very_high")
	fmt.Println("verify:", v.Match, "at level", v.Decision.SecurityLevel)

	ps, _ := v1.FindPersons(ctx, "user-21", "")
	fmt.Println("persons of user-21:", len(ps))

	s, _ := v1.CreateSession(ctx, client.SessionOptions{Operations: []string{"predict"}, MaxUses: 5})
	fmt.Println("session:", s.Operations, s.MaxUses, "uses")

	fmt.Println("delete:", v1.DeletePerson(ctx, e.Person.PUID))
	_, err = v1.Person(ctx, e.Person.PUID)
	fmt.Println("after delete:", err.(*client.Problem).Status)
	// Output:
	// enroll: done created level 1
	// identify: 1 candidate, user user-21 at level high
	// verify: true at level very_high
	// persons of user-21: 1
	// session: [predict] 5 uses
	// delete: <nil>
	// after delete: 404
}
