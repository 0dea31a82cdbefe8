package deploycheck

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// asynqMetricNames are the metrics asynq's queue collector (registered on
// the web role's /metrics in cmd/servicedesk/serve.go) exports, read from
// the source of the module version go.mod requires: its Describe needs Redis.
func asynqMetricNames(t *testing.T) map[string]bool {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/hibiken/asynq/x").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/hibiken/asynq/x: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "metrics", "metrics.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(src, []byte(`const namespace = "asynq"`)) {
		t.Fatal("asynq/x/metrics: the namespace is no longer \"asynq\"")
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`BuildFQName\(namespace, "", "(\w+)"\)`).FindAllSubmatch(src, -1) {
		names["asynq_"+string(m[1])] = true
	}
	if !names["asynq_queue_size"] {
		t.Fatalf("asynq/x/metrics: found %v, not even asynq_queue_size", names)
	}
	return names
}

// strictDecoder decodes YAML into the k8s.io/api types of the kinds the
// manifests use; an unknown or duplicate field is an error.
func strictDecoder(t *testing.T) *json.Serializer {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, autoscalingv2.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
}

func decodeAll(t *testing.T, where string, data []byte) []runtime.Object {
	dec := strictDecoder(t)
	var out []runtime.Object
	for i, doc := range bytes.Split(data, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Errorf("%s, document %d: %v", where, i+1, err)
			continue
		}
		out = append(out, obj)
	}
	return out
}

// TestKubernetesManifests decodes every manifest strictly, renders the
// kustomization with kubectl (installed here and on CI: not skipped), and
// checks the rendered objects: a Deployment per role with its replicas,
// probes on real endpoints of the container port (web's listener, the
// other roles' --metrics-listen), a grace period longer than worker.shutdown_timeout,
// a non-root read-only container with resource requests and limits, env
// that is all config keys with every secret file in the Secret, a worker
// PodDisruptionBudget and an autoscaler on a metric asynq really exports.
func TestKubernetesManifests(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(root, "deploy/kubernetes/*.yaml"))
	for _, f := range files {
		if base := filepath.Base(f); base == "kustomization.yaml" || base == "servicedesk.yaml" {
			continue
		}
		b, _ := os.ReadFile(f)
		if len(decodeAll(t, filepath.Base(f), b)) == 0 {
			t.Errorf("%s: no objects", filepath.Base(f))
		}
	}

	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is needed to render deploy/kubernetes (kubectl kustomize): %v", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", filepath.Join(root, "deploy/kubernetes"))
	cmd.Stderr = &stderr
	rendered, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize deploy/kubernetes: %v\n%s", err, stderr.String())
	}
	objs := decodeAll(t, "kubectl kustomize output", rendered)

	deployments := map[string]*appsv1.Deployment{}
	var configMaps []*corev1.ConfigMap
	var secrets []*corev1.Secret
	var services []*corev1.Service
	var pdbs []*policyv1.PodDisruptionBudget
	var hpas []*autoscalingv2.HorizontalPodAutoscaler
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			deployments[o.Name] = o
		case *corev1.ConfigMap:
			configMaps = append(configMaps, o)
		case *corev1.Secret:
			secrets = append(secrets, o)
		case *corev1.Service:
			services = append(services, o)
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			hpas = append(hpas, o)
		case *corev1.Namespace:
		default:
			t.Errorf("unexpected object %T", o)
		}
		if m, ok := o.(interface{ GetNamespace() string }); ok {
			if _, isNS := o.(*corev1.Namespace); !isNS && m.GetNamespace() != "servicedesk" {
				t.Errorf("%T: namespace %q, want servicedesk", o, m.GetNamespace())
			}
		}
	}
	if len(configMaps) != 1 || len(secrets) != 1 {
		t.Fatalf("%d ConfigMaps and %d Secrets: want one of each", len(configMaps), len(secrets))
	}
	cm, secret := configMaps[0], secrets[0]
	cfgYAML, ok := cm.Data["servicedesk.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s: no servicedesk.yaml", cm.Name)
	}
	for k, v := range secret.StringData {
		if !strings.Contains(v, "EXAMPLE") && !strings.HasPrefix(k, "redis_url") {
			t.Errorf("Secret key %s: example values must say EXAMPLE", k)
		}
	}

	want := map[string]int32{"scheduler": 1, "worker": 2, "web": 2}
	for role, replicas := range want {
		d, ok := deployments["servicedesk-"+role]
		if !ok {
			t.Errorf("no Deployment servicedesk-%s", role)
			continue
		}
		where := "Deployment " + d.Name
		if d.Spec.Replicas == nil || *d.Spec.Replicas != replicas {
			t.Errorf("%s: replicas %v, want %d", where, d.Spec.Replicas, replicas)
		}
		sel, err := metav1LabelSelector(d)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("%s: the selector does not match the pod labels", where)
		}
		pod := d.Spec.Template.Spec
		if len(pod.Containers) != 1 {
			t.Fatalf("%s: %d containers, want 1", where, len(pod.Containers))
		}
		c := pod.Containers[0]
		wantArgs := []string{"serve", "--roles", role}
		if role != "web" {
			wantArgs = append(wantArgs, "--metrics-listen", "0.0.0.0:9090")
		}
		if !slices.Equal(c.Args, wantArgs) || len(c.Command) != 0 {
			t.Errorf("%s: args %q (command %q), want %q after the image's entrypoint", where, c.Args, c.Command, wantArgs)
		}
		if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
			t.Errorf("%s: want runAsNonRoot and runAsUser 65532", where)
		}
		if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: want readOnlyRootFilesystem and no privilege escalation", where)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
			t.Errorf("%s: want memory requests and limits and a CPU request", where)
		}
		if c.Resources.Requests.Memory().Cmp(*c.Resources.Limits.Memory()) > 0 {
			t.Errorf("%s: memory request above its limit", where)
		}

		// Volumes: the config at /etc/servicedesk from the ConfigMap, the
		// secrets from the Secret; env: config keys, each _FILE a key of
		// the Secret under its mount.
		mounts := map[string]corev1.VolumeMount{}
		for _, m := range c.VolumeMounts {
			mounts[m.Name] = m
		}
		var secretDir string
		for _, v := range pod.Volumes {
			switch {
			case v.ConfigMap != nil:
				if v.ConfigMap.Name != cm.Name || mounts[v.Name].MountPath != "/etc/servicedesk" {
					t.Errorf("%s: the ConfigMap must be mounted at /etc/servicedesk", where)
				}
			case v.Secret != nil:
				if v.Secret.SecretName != secret.Name {
					t.Errorf("%s: secret volume %s names %s, not the Secret %s", where, v.Name, v.Secret.SecretName, secret.Name)
				}
				secretDir = mounts[v.Name].MountPath
			}
		}
		env := map[string]string{}
		for _, e := range c.Env {
			if e.ValueFrom != nil {
				t.Errorf("%s: %s comes from valueFrom: give secrets as files (_FILE)", where, e.Name)
			}
			env[e.Name] = e.Value
		}
		checkEnv(t, where, env)
		secretFiles := map[string]string{}
		for k, v := range secret.StringData {
			secretFiles[secretDir+"/"+k] = v
		}
		for k, v := range env {
			if strings.HasSuffix(k, "_FILE") {
				if _, ok := secretFiles[v]; !ok {
					t.Errorf("%s: %s=%s is not a key of the Secret under %s", where, k, v, secretDir)
				}
			}
		}
		cfg := parseConfig(t, where, cfgYAML, merge(imageEnv, env), secretFiles)

		grace := pod.TerminationGracePeriodSeconds
		if grace == nil || time.Duration(*grace)*time.Second <= cfg.Worker.ShutdownTimeout.D() {
			t.Errorf("%s: terminationGracePeriodSeconds %v: want longer than worker.shutdown_timeout %v", where, grace, cfg.Worker.ShutdownTimeout)
		}

		// web probes its listener (8080, SERVICEDESK_HTTP_LISTEN of the
		// image); the other roles the one --metrics-listen opens (9090).
		port := int32(9090)
		if role == "web" {
			port = 8080
		}
		if len(c.Ports) != 1 || c.Ports[0].ContainerPort != port {
			t.Fatalf("%s: ports %+v: want %d", where, c.Ports, port)
		}
		checkProbe := func(kind string, p *corev1.Probe, path string) {
			if p == nil || p.HTTPGet == nil {
				t.Errorf("%s: want an HTTP %s probe on %s", where, kind, path)
				return
			}
			if p.HTTPGet.Path != path || !portIs(p.HTTPGet.Port, c.Ports[0]) {
				t.Errorf("%s: %s probe %s on %s, want %s on the container port %d", where, kind, p.HTTPGet.Path, p.HTTPGet.Port.String(), path, port)
			}
		}
		checkProbe("readiness", c.ReadinessProbe, "/readyz")
		checkProbe("liveness", c.LivenessProbe, "/healthz")
		if role != "web" {
			continue
		}
		if len(services) != 1 || !labels.SelectorFromSet(services[0].Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) ||
			!portIs(services[0].Spec.Ports[0].TargetPort, c.Ports[0]) {
			t.Errorf("want one Service selecting the web pods on their port 8080")
		}
	}

	worker := deployments["servicedesk-worker"]
	if worker == nil {
		t.FailNow()
	}
	var workerPDB bool
	for _, p := range pdbs {
		sel, err := labelsSelector(p.Spec.Selector)
		if err == nil && sel.Matches(labels.Set(worker.Spec.Template.Labels)) {
			workerPDB = true
			if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
				t.Errorf("PodDisruptionBudget %s: no budget", p.Name)
			}
		}
	}
	if !workerPDB {
		t.Error("no PodDisruptionBudget selects the worker pods")
	}

	// The autoscaler scales the workers on a queue metric asynq's
	// collector really exports (the one /metrics serves).
	exported := asynqMetricNames(t)
	if len(hpas) != 1 {
		t.Fatalf("%d HorizontalPodAutoscalers, want 1 (workers)", len(hpas))
	}
	h := hpas[0]
	if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != worker.Name {
		t.Errorf("HPA %s scales %s %s, want the worker Deployment", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 {
		t.Errorf("HPA %s: minReplicas below the 2 workers", h.Name)
	}
	if len(h.Spec.Metrics) == 0 {
		t.Errorf("HPA %s: no metrics", h.Name)
	}
	for _, m := range h.Spec.Metrics {
		if m.Type != autoscalingv2.ExternalMetricSourceType || m.External == nil {
			t.Errorf("HPA %s: metric %s: want External (the queue gauges come from the web pods, not the workers)", h.Name, m.Type)
			continue
		}
		if !exported[m.External.Metric.Name] {
			t.Errorf("HPA %s: metric %s is not exported by asynq's collector (it has %v)", h.Name, m.External.Metric.Name, exported)
		}
		if q := m.External.Metric.Selector.MatchLabels["queue"]; q != "ingest" && q != "notify" && q != "fetch" {
			t.Errorf("HPA %s: queue %q is not one of ours (ingest, fetch, notify)", h.Name, q)
		}
	}
}

func portIs(p intstr.IntOrString, cp corev1.ContainerPort) bool {
	if p.Type == intstr.String {
		return p.StrVal == cp.Name
	}
	return p.IntVal == cp.ContainerPort
}
