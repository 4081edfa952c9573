// Package kubernetes checks Missive's Kubernetes manifests offline: every
// document decodes strictly (no unknown or duplicate field) into the
// k8s.io/api type of its kind, and the Deployments hold what running
// Missive needs. It is a module of its own so that Missive's module does
// not depend on Kubernetes; .ci/run runs it.
//
//	cd deploy/kubernetes && go test ./...
package kubernetes

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// manifests is what the test read: each kind by name.
type manifests struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	pdbs        map[string]*policyv1.PodDisruptionBudget
	secrets     map[string]*corev1.Secret
	configMaps  map[string]*corev1.ConfigMap
}

// load decodes every document of the manifests (*.yaml) and of the Secret
// template (secret.yaml.example), strictly, into its kind's type.
func load(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "secret.yaml.example")
	m := &manifests{deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{}}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			where := fmt.Sprintf("%s, document %d", file, i+1)
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			var obj any
			switch head.APIVersion + " " + head.Kind {
			case "apps/v1 Deployment":
				obj = into(m.deployments, head.Metadata.Name)
			case "v1 Service":
				obj = into(m.services, head.Metadata.Name)
			case "policy/v1 PodDisruptionBudget":
				obj = into(m.pdbs, head.Metadata.Name)
			case "v1 Secret":
				obj = into(m.secrets, head.Metadata.Name)
			case "v1 ConfigMap":
				obj = into(m.configMaps, head.Metadata.Name)
			default:
				t.Errorf("%s: %s %s is not a kind this test knows", where, head.APIVersion, head.Kind)
				continue
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Errorf("%s (%s %s): %v", where, head.Kind, head.Metadata.Name, err)
			}
		}
	}
	return m
}

// into makes a new object named name in byName and returns it.
func into[T any](byName map[string]*T, name string) *T {
	v := new(T)
	byName[name] = v
	return v
}

func stripComments(doc string) string {
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(doc))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); !strings.HasPrefix(l, "#") {
			out.WriteString(l + "\n")
		}
	}
	return out.String()
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := load(t)
	for _, role := range []string{"api", "worker", "scheduler"} {
		if m.deployments["missive-"+role] == nil {
			t.Errorf("no Deployment missive-%s", role)
		}
	}
	if m.services["missive-api"] == nil || m.pdbs["missive-api"] == nil || m.secrets["missive-secrets"] == nil || m.configMaps["missive-config"] == nil {
		t.Errorf("want the api's Service and PodDisruptionBudget, the missive-secrets Secret and the missive-config ConfigMap")
	}
}

// The strict decoding refuses what the API server would not know.
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	var d appsv1.Deployment
	err := yaml.UnmarshalStrict([]byte("apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 2\n"), &d)
	if err == nil || !strings.Contains(err.Error(), "replica") {
		t.Errorf("an unknown field decoded: %v", err)
	}
	err = yaml.UnmarshalStrict([]byte("apiVersion: apps/v1\nkind: Deployment\nkind: Deployment\n"), &d)
	if err == nil {
		t.Error("a duplicate field decoded")
	}
}

func TestDeploymentsRunMissiveSafely(t *testing.T) {
	m := load(t)
	for name, d := range m.deployments {
		role := strings.TrimPrefix(name, "missive-")
		pod := d.Spec.Template
		sel, err := metaSelector(d.Spec.Selector.MatchLabels)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			t.Errorf("%s: its selector does not match its pods (%v)", name, err)
		}
		if len(pod.Spec.Containers) != 1 {
			t.Fatalf("%s: want one container", name)
		}
		c := pod.Spec.Containers[0]
		if !slices.Equal(c.Args, []string{role}) {
			t.Errorf("%s: args %v, want [%s]", name, c.Args, role)
		}
		psc, csc := pod.Spec.SecurityContext, c.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("%s: the pod must run as a non-root user", name)
		}
		if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
			csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
			csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, corev1.Capability("ALL")) {
			t.Errorf("%s: the container must not escalate, must have a read-only root and drop every capability", name)
		}
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, lim := c.Resources.Requests[res], c.Resources.Limits[res]
			if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
				t.Errorf("%s: %s request %s and limit %s: want both, the request within the limit", name, res, req.String(), lim.String())
			}
		}
		ops := -1
		for _, p := range c.Ports {
			if p.Name == "ops" {
				ops = int(p.ContainerPort)
			}
		}
		if ops != 9090 {
			t.Errorf("%s: want a port named ops, 9090 (MISSIVE_OPS_ADDR's default)", name)
		}
		for probe, want := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
			if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.String() != "ops" {
				t.Errorf("%s: want a probe GET %s on the ops port", name, want)
			}
		}
		var fromSecret, fromConfig bool
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil && m.secrets[e.SecretRef.Name] != nil {
				fromSecret = true
			}
			if e.ConfigMapRef != nil && m.configMaps[e.ConfigMapRef.Name] != nil {
				fromConfig = true
			}
		}
		if !fromSecret || !fromConfig {
			t.Errorf("%s: want its environment from a Secret and a ConfigMap of these manifests", name)
		}
		for _, vm := range c.VolumeMounts {
			if vm.MountPath == "/run/secrets/dkim" && !vm.ReadOnly {
				t.Errorf("%s: the DKIM key is mounted writable", name)
			}
		}
	}
	svc := m.services["missive-api"]
	if sel, _ := metaSelector(svc.Spec.Selector); !sel.Matches(labels.Set(m.deployments["missive-api"].Spec.Template.Labels)) ||
		sel.Matches(labels.Set(m.deployments["missive-worker"].Spec.Template.Labels)) {
		t.Error("the api Service must select the api's pods and only them")
	}
	for name, pdb := range m.pdbs {
		sel, err := metaSelector(pdb.Spec.Selector.MatchLabels)
		matched := 0
		for _, d := range m.deployments {
			if err == nil && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				matched++
			}
		}
		if matched != 1 {
			t.Errorf("PodDisruptionBudget %s selects the pods of %d Deployments, want 1", name, matched)
		}
	}
}

func metaSelector(m map[string]string) (labels.Selector, error) {
	if len(m) == 0 {
		return nil, fmt.Errorf("empty selector")
	}
	return labels.SelectorFromSet(m), nil
}

// The ConfigMap and the Secret name only settings Missive knows: those of
// deploy/env.example, which a test of cmd/missive keeps equal to
// "missive serve -h". The secrets live in the Secret, not the ConfigMap.
func TestEnvironmentNamesKnownSettings(t *testing.T) {
	m := load(t)
	b, err := os.ReadFile("../env.example")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, s := range regexp.MustCompile(`(?m)^#? ?((?:MISSIVE|TWILIO)_[A-Z0-9_]+)=`).FindAllSubmatch(b, -1) {
		known[string(s[1])] = true
	}
	if len(known) < 40 {
		t.Fatalf("env.example names %d settings, want them all", len(known))
	}
	secret := map[string]bool{"MISSIVE_REDIS_URL": true, "MISSIVE_SECRET": true, "MISSIVE_DATA_KEYS": true, "MISSIVE_API_KEYS": true,
		"MISSIVE_TOKEN_KEYS": true, "MISSIVE_SMTP_URL": true, "TWILIO_AUTH_TOKEN": true, "MISSIVE_SENDGRID_PUBLIC_KEY": true,
		"MISSIVE_MAILGUN_SIGNING_KEY": true, "MISSIVE_POSTMARK_AUTH": true}
	for name, cm := range m.configMaps {
		for k := range cm.Data {
			if !known[k] {
				t.Errorf("ConfigMap %s: %s is not a setting of env.example", name, k)
			}
			if secret[k] {
				t.Errorf("ConfigMap %s: %s is a secret: put it in the Secret", name, k)
			}
		}
	}
	s := m.secrets["missive-secrets"]
	for k := range s.StringData {
		if !known[k] {
			t.Errorf("Secret missive-secrets: %s is not a setting of env.example", k)
		}
	}
	for _, k := range []string{"MISSIVE_REDIS_URL", "MISSIVE_SECRET", "MISSIVE_DATA_KEYS", "MISSIVE_API_KEYS"} {
		if _, ok := s.StringData[k]; !ok {
			t.Errorf("Secret missive-secrets lacks the required %s", k)
		}
	}
	if _, ok := m.secrets["missive-dkim"].StringData["private.pem"]; !ok {
		t.Error("Secret missive-dkim lacks private.pem")
	}
	if !bytes.Contains(b, []byte("MISSIVE_DKIM_KEY_FILE=/run/secrets/dkim/private.pem")) {
		t.Error("env.example does not point MISSIVE_DKIM_KEY_FILE at the mounted key")
	}
}
