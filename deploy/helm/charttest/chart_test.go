// Package charttest renders the Helm chart with Helm's own Go library under
// several value sets and decodes every object strictly into the Kubernetes
// API types, so a typo in a template fails here. It is a module of its own:
// Helm and the Kubernetes types stay out of the service's module.
package charttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// render returns the chart's objects under values, by "Kind/name".
func render(t *testing.T, values map[string]any) map[string]map[string]any {
	t.Helper()
	ch, err := loader.Load("../biomatch")
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{Name: "bm", Namespace: "biomatch", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	objects := map[string]map[string]any{}
	for name, text := range files {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(text, "\n---") {
			if strings.TrimSpace(doc) == "" || strings.TrimSpace(strings.Trim(doc, "-")) == "" {
				continue
			}
			var obj map[string]any
			if err := yaml.UnmarshalStrict([]byte(doc), &obj); err != nil {
				t.Fatalf("%s: not YAML: %v\n%s", name, err, doc)
			}
			if obj == nil {
				continue
			}
			meta, _ := obj["metadata"].(map[string]any)
			key := fmt.Sprintf("%s/%s", obj["kind"], meta["name"])
			if _, dup := objects[key]; dup {
				t.Fatalf("%s rendered twice", key)
			}
			objects[key] = obj
			decodeStrict(t, key, obj)
		}
	}
	return objects
}

// decodeStrict decodes obj into its Kubernetes type refusing unknown
// fields (a misspelt field fails) and checks the apiVersion.
func decodeStrict(t *testing.T, key string, obj map[string]any) {
	t.Helper()
	var target any
	want := ""
	switch obj["kind"] {
	case "Deployment":
		target, want = &appsv1.Deployment{}, "apps/v1"
	case "Service":
		target, want = &corev1.Service{}, "v1"
	case "Secret":
		target, want = &corev1.Secret{}, "v1"
	case "PodDisruptionBudget":
		target, want = &policyv1.PodDisruptionBudget{}, "policy/v1"
	case "HorizontalPodAutoscaler":
		target, want = &autoscalingv2.HorizontalPodAutoscaler{}, "autoscaling/v2"
	case "Job":
		target, want = &batchv1.Job{}, "batch/v1"
	case "ScaledObject":
		// KEDA's types are not k8s.io/api's: check the shape KEDA documents.
		if obj["apiVersion"] != "keda.sh/v1alpha1" {
			t.Errorf("%s: apiVersion %v", key, obj["apiVersion"])
		}
		spec, _ := obj["spec"].(map[string]any)
		for _, f := range []string{"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "triggers"} {
			if spec[f] == nil {
				t.Errorf("%s: spec.%s missing", key, f)
			}
		}
		for k := range spec {
			if !slices.Contains([]string{"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "triggers", "pollingInterval", "cooldownPeriod"}, k) {
				t.Errorf("%s: unknown spec.%s", key, k)
			}
		}
		return
	default:
		t.Fatalf("%s: a kind this test does not know", key)
	}
	if obj["apiVersion"] != want {
		t.Errorf("%s: apiVersion %v, want %s", key, obj["apiVersion"], want)
	}
	raw, _ := json.Marshal(obj)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(target); err != nil {
		t.Errorf("%s does not decode strictly into its Kubernetes type: %v", key, err)
	}
}

func deployment(t *testing.T, objects map[string]map[string]any, name string) appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	raw, _ := json.Marshal(objects["Deployment/"+name])
	if err := json.Unmarshal(raw, &d); err != nil || d.Name == "" {
		t.Fatalf("Deployment/%s missing (%v); have %v", name, err, keys(objects))
	}
	return d
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestChartDefaults: API and worker Deployments, Service, HPA, both
// PodDisruptionBudgets, the Secret and the migrate hook; the API is ready
// only on /ready, and every container gets its settings from the Secret.
func TestChartDefaults(t *testing.T) {
	objects := render(t, nil)
	for _, want := range []string{"Deployment/bm-biomatch-api", "Deployment/bm-biomatch-worker", "Service/bm-biomatch",
		"HorizontalPodAutoscaler/bm-biomatch-api", "PodDisruptionBudget/bm-biomatch-api", "PodDisruptionBudget/bm-biomatch-worker",
		"Secret/bm-biomatch", "Job/bm-biomatch-migrate"} {
		if objects[want] == nil {
			t.Errorf("%s not rendered; have %v", want, keys(objects))
		}
	}
	if objects["ScaledObject/bm-biomatch-worker"] != nil {
		t.Error("a KEDA ScaledObject by default")
	}
	api := deployment(t, objects, "bm-biomatch-api")
	c := api.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/ready" {
		t.Errorf("API readiness probe %+v, want GET /ready", c.ReadinessProbe)
	}
	if api.Spec.Replicas != nil {
		t.Error("the API Deployment sets replicas while the HPA owns them")
	}
	for _, d := range []appsv1.Deployment{api, deployment(t, objects, "bm-biomatch-worker")} {
		env := map[string]corev1.EnvVar{}
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			env[e.Name] = e
		}
		for _, name := range []string{"DATABASE_URL", "REDIS_URL", "MASTER_KEY"} {
			if e, ok := env[name]; !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "bm-biomatch" {
				t.Errorf("%s: %s is not read from the Secret: %+v", d.Name, name, e)
			}
		}
		if env["SECURITY_LEVEL"].Value != "high" {
			t.Errorf("%s: SECURITY_LEVEL %+v", d.Name, env["SECURITY_LEVEL"])
		}
	}
	if sel := objects["Service/bm-biomatch"]["spec"].(map[string]any)["selector"].(map[string]any); sel["app.kubernetes.io/component"] != "api" {
		t.Errorf("the Service selects %v, want the API pods", sel)
	}
}

// TestChartValueSets: an existing Secret, no HPA (fixed replicas), KEDA on,
// migrations off: each renders strictly and as asked.
func TestChartValueSets(t *testing.T) {
	t.Run("existing secret", func(t *testing.T) {
		objects := render(t, map[string]any{"secret": map[string]any{"existingSecret": "prod-biomatch"}})
		if objects["Secret/bm-biomatch"] != nil {
			t.Error("a Secret rendered though an existing one is named")
		}
		api := deployment(t, objects, "bm-biomatch-api")
		if ref := api.Spec.Template.Spec.Containers[0].Env[0].ValueFrom.SecretKeyRef; ref.Name != "prod-biomatch" {
			t.Errorf("env reads Secret %q", ref.Name)
		}
	})
	t.Run("fixed replicas", func(t *testing.T) {
		objects := render(t, map[string]any{"api": map[string]any{"replicas": 3, "hpa": map[string]any{"enabled": false}}})
		if objects["HorizontalPodAutoscaler/bm-biomatch-api"] != nil {
			t.Error("an HPA though disabled")
		}
		if r := deployment(t, objects, "bm-biomatch-api").Spec.Replicas; r == nil || *r != 3 {
			t.Errorf("replicas %v, want 3", r)
		}
	})
	t.Run("KEDA", func(t *testing.T) {
		objects := render(t, map[string]any{"worker": map[string]any{"keda": map[string]any{"enabled": true, "maxReplicas": 20}}})
		so := objects["ScaledObject/bm-biomatch-worker"]
		if so == nil {
			t.Fatalf("no ScaledObject; have %v", keys(objects))
		}
		trigger := so["spec"].(map[string]any)["triggers"].([]any)[0].(map[string]any)["metadata"].(map[string]any)
		if trigger["listName"] != "asynq:{enroll}:pending" {
			t.Errorf("KEDA watches %v, want asynq's pending list of the enroll queue", trigger["listName"])
		}
		if deployment(t, objects, "bm-biomatch-worker").Spec.Replicas != nil {
			t.Error("the worker Deployment sets replicas while KEDA owns them")
		}
	})
	t.Run("KEDA on a sharded queue in a Redis Cluster", func(t *testing.T) {
		objects := render(t, map[string]any{"queueShards": 3,
			"worker": map[string]any{"keda": map[string]any{"enabled": true, "redisCluster": true, "redisAddress": "r1:6379,r2:6379"}}})
		triggers := objects["ScaledObject/bm-biomatch-worker"]["spec"].(map[string]any)["triggers"].([]any)
		var lists []string
		for _, tr := range triggers {
			tr := tr.(map[string]any)
			meta := tr["metadata"].(map[string]any)
			if tr["type"] != "redis-cluster" || meta["addresses"] != "r1:6379,r2:6379" {
				t.Errorf("trigger %v, want redis-cluster on the given addresses", tr)
			}
			lists = append(lists, meta["listName"].(string))
		}
		if strings.Join(lists, " ") != "asynq:{enroll-00}:pending asynq:{enroll-01}:pending asynq:{enroll-02}:pending" {
			t.Errorf("KEDA watches %v, want one trigger per shard", lists)
		}
		env := map[string]string{}
		for _, e := range deployment(t, objects, "bm-biomatch-worker").Spec.Template.Spec.Containers[0].Env {
			env[e.Name] = e.Value
		}
		if env["QUEUE_SHARDS"] != "3" {
			t.Errorf("QUEUE_SHARDS %q, want 3", env["QUEUE_SHARDS"])
		}
	})
	t.Run("no migrate hook", func(t *testing.T) {
		if objects := render(t, map[string]any{"migrate": map[string]any{"enabled": false}}); objects["Job/bm-biomatch-migrate"] != nil {
			t.Error("a migrate Job though disabled")
		}
	})
}
