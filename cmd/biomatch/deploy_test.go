package main

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// TestComposeFile loads docker-compose.yml with compose-go (no Docker
// engine runs here) and checks services, health checks and start order.
func TestComposeFile(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"../../docker-compose.yml"}, cli.WithName("biomatch"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	want := []string{"api", "migrate", "postgres", "redis", "worker"}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Fatalf("services = %v, want %v", got, want)
	}
	svc := func(name string) types.ServiceConfig { s, _ := p.GetService(name); return s }

	pg := svc("postgres")
	if !strings.HasPrefix(pg.Image, "pgvector/pgvector:") || versionBelow(strings.TrimPrefix(pg.Image, "pgvector/pgvector:"), "0.8.4") {
		t.Errorf("postgres image = %q, want pgvector/pgvector ≥ 0.8.4", pg.Image)
	}
	if r := svc("redis"); !slices.Contains(r.Command, "--appendonly") || r.Command[slices.Index(r.Command, "--appendonly")+1] != "yes" {
		t.Errorf("redis command = %v, want --appendonly yes", r.Command)
	}
	for _, name := range []string{"postgres", "redis", "api", "worker"} {
		if hc := svc(name).HealthCheck; hc == nil || len(hc.Test) == 0 || hc.Disable {
			t.Errorf("%s has no health check", name)
		}
	}
	if m := svc("migrate"); m.Build == nil || !slices.Equal(m.Command, types.ShellCommand{"migrate"}) {
		t.Errorf("migrate = build %v command %v", m.Build, m.Command)
	}
	for _, name := range []string{"api", "worker"} {
		deps := svc(name).DependsOn
		for dep, cond := range map[string]string{"postgres": "service_healthy", "redis": "service_healthy", "migrate": "service_completed_successfully"} {
			if deps[dep].Condition != cond {
				t.Errorf("%s depends on %s with %q, want %q", name, dep, deps[dep].Condition, cond)
			}
		}
	}
	if m := svc("migrate").DependsOn["postgres"]; m.Condition != "service_healthy" {
		t.Errorf("migrate waits for postgres with %q", m.Condition)
	}
	api := svc("api")
	if len(api.Ports) != 2 || api.Ports[0].Target != 8000 || api.Ports[1].Target != 9464 || api.Ports[1].HostIP != "127.0.0.1" {
		t.Errorf("api ports = %+v, want 8000 and the metrics' 9464 on the host's loopback only", api.Ports)
	}
	if api.Environment["METRICS_ADDR"] == nil || *api.Environment["METRICS_ADDR"] != ":9464" {
		t.Errorf("api METRICS_ADDR = %v, want :9464 (the default, loopback, is unreachable from the host)", api.Environment["METRICS_ADDR"])
	}
	if !strings.Contains(strings.Join(api.HealthCheck.Test, " "), "/ready") {
		t.Errorf("api health check %v does not ask /ready", api.HealthCheck.Test)
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// versionBelow compares the "X.Y.Z" prefix of a tag like 0.8.4-pg17.
func versionBelow(tag, min string) bool {
	v := strings.SplitN(tag, "-", 2)[0]
	a, b := strings.Split(v, "."), strings.Split(min, ".")
	for i := range b {
		if i >= len(a) {
			return true
		}
		if a[i] != b[i] {
			return len(a[i]) < len(b[i]) || (len(a[i]) == len(b[i]) && a[i] < b[i])
		}
	}
	return false
}

// TestDockerfile: multi-stage, static binary, non-root.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	var stages int
	for _, line := range strings.Split(df, "\n") {
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(line)), "FROM ") {
			stages++
		}
	}
	for _, want := range []string{"COPY --from=build", "CGO_ENABLED=0", "./cmd/biomatch", "USER nonroot"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if stages < 2 {
		t.Errorf("Dockerfile has %d stages, want a multi-stage build", stages)
	}
}

// TestBinaryImportsNoBench: the production binary carries no benchmark,
// dataset or load-test code.
func TestBinaryImportsNoBench(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/biomatch/biomatch/bench") {
			t.Errorf("the binary imports %s", pkg)
		}
	}
}
