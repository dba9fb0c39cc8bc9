package deployments_test

// These tests read the deployment files as text (the module has no YAML
// library, and the files are meant to be read by people too) and check what
// a typo would silently break: every CHAT_* setting they use exists in
// internal/config and has a value it accepts, every Kubernetes Deployment is
// probed and drains, the compose file has its three NATS nodes and two
// replicas of each role, and the NATS, nginx and Docker files agree with it.
// Each checker is also fed a broken input, to show it can fail.

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/config"
)

var roles = []string{"api", "edge", "sequencer", "projector"}

// settingName is a CHAT_* variable as it appears in any file: YAML keys,
// `name:` values, ${VAR} references, Dockerfile ENV, prose.
var settingName = regexp.MustCompile(`\bCHAT_[A-Z0-9_]+`)

func knownSettings() map[string]bool {
	known := map[string]bool{}
	for _, n := range config.EnvNames() {
		known[n] = true
	}
	return known
}

// unknownSettings returns the CHAT_* names text uses that known lacks, each
// once, in order of first use.
func unknownSettings(text string, known map[string]bool) []string {
	var bad []string
	for _, n := range settingName.FindAllString(text, -1) {
		if !known[n] && !slices.Contains(bad, n) {
			bad = append(bad, n)
		}
	}
	return bad
}

// settingValue is `CHAT_X: value` (YAML), `CHAT_X=value` (ENV, .env) at the
// start of a line; comments are not assignments.
var settingValue = regexp.MustCompile(`(?m)^[ \t]*(?:ENV[ \t]+)?(CHAT_[A-Z0-9_]+)[ \t]*[:=][ \t]*(.*?)[ \t]*$`)

// composeDefault is compose's ${VAR:-default} interpolation.
var composeDefault = regexp.MustCompile(`^\$\{[A-Z0-9_]+:?-(.*)\}$`)

// badValues loads the configuration once per CHAT_* assignment in text, with
// only that variable set, and reports each value the roles would reject.
func badValues(text string) []string {
	var bad []string
	for _, m := range settingValue.FindAllStringSubmatch(text, -1) {
		name, v := m[1], strings.Trim(m[2], `"'`)
		if d := composeDefault.FindStringSubmatch(v); d != nil {
			v = d[1]
		}
		if _, err := config.Load(nil, func(k string) string {
			if k == name {
				return v
			}
			return ""
		}); err != nil {
			bad = append(bad, fmt.Sprintf("%s=%q: %v", name, v, err))
		}
	}
	return bad
}

// deploymentFiles returns every file under deployments/ but the Go ones, and
// docs/deployment.md, by path relative to deployments/.
func deploymentFiles(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") {
			return err
		}
		b, err := os.ReadFile(path)
		files[filepath.ToSlash(path)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../docs/deployment.md")
	if err != nil {
		t.Fatal(err)
	}
	files["../docs/deployment.md"] = string(b)
	for _, want := range []string{"Dockerfile", "compose.yaml", "nginx.conf", "k8s/config.yaml", "k8s/nats-values.yaml"} {
		if _, ok := files[want]; !ok {
			t.Fatalf("deployments/%s is missing", want)
		}
	}
	return files
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUnknownSettingsChecker(t *testing.T) {
	known := knownSettings()
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"made-up name", "CHAT_NOPE: 1", []string{"CHAT_NOPE"}},
		{"known name", "CHAT_NATS_URL: nats://a:4222", nil},
		{"a known name's longer cousin", "CHAT_NATS_URLS=x", []string{"CHAT_NATS_URLS"}},
		{"compose interpolation", "x: ${CHAT_BOGUS:-1} ${CHAT_TOKEN_SECRET}", []string{"CHAT_BOGUS"}},
		{"downward API env", "- name: CHAT_INSTANCE_ID\n- name: CHAT_POD_NAME", []string{"CHAT_POD_NAME"}},
		{"each once", "CHAT_NOPE CHAT_NOPE CHAT_NADA", []string{"CHAT_NOPE", "CHAT_NADA"}},
		{"not a word of its own", "XCHAT_NOPE chat_nope CHAT_*", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := unknownSettings(tc.text, known); !slices.Equal(got, tc.want) {
				t.Errorf("unknownSettings(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestBadValuesChecker(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		bad        int
	}{
		{"good yaml", "  CHAT_PARTITIONS: \"8\"\n  CHAT_LEASE_TTL: 6s\n  CHAT_RATE_LIMITS: \"on\"", 0},
		{"good env", "ENV CHAT_HTTP_ADDR=0.0.0.0:8080\nCHAT_STREAM_STORAGE=file", 0},
		{"compose default", "CHAT_STREAM_REPLICAS: ${CHAT_STREAM_REPLICAS:-3}", 0},
		{"a comment is no assignment", "# CHAT_PARTITIONS: lots", 0},
		{"not a number", "  CHAT_PARTITIONS: eight", 1},
		{"out of range", "  CHAT_PARTITIONS: \"0\"", 1},
		{"not a duration", "  CHAT_LEASE_TTL: 6", 1},
		{"not on or off", "  CHAT_RATE_LIMITS: maybe", 1},
		{"bad storage", "CHAT_STREAM_STORAGE=disk", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := badValues(tc.text); len(got) != tc.bad {
				t.Errorf("badValues(%q) = %q, want %d problems", tc.text, got, tc.bad)
			}
		})
	}
}

// TestSettingsExist is the point of this file: no deployment file may set a
// CHAT_* variable that no role reads (it would be ignored, silently), or give
// one a value the roles reject at start-up.
func TestSettingsExist(t *testing.T) {
	known := knownSettings()
	used := map[string]bool{}
	for path, text := range deploymentFiles(t) {
		t.Run(path, func(t *testing.T) {
			if bad := unknownSettings(text, known); len(bad) > 0 {
				t.Errorf("%s uses settings internal/config does not have: %s", path, strings.Join(bad, ", "))
			}
			if strings.HasSuffix(path, ".md") {
				return
			}
			for _, b := range badValues(text) {
				t.Errorf("%s: %s", path, b)
			}
			for _, n := range settingName.FindAllString(text, -1) {
				used[n] = true
			}
		})
	}
	// Guard against a checker that finds nothing at all.
	for _, n := range []string{"CHAT_NATS_URL", "CHAT_TOKEN_SECRET", "CHAT_POSTGRES_URL", "CHAT_REDIS_URL",
		"CHAT_STREAM_REPLICAS", "CHAT_PARTITIONS", "CHAT_HTTP_ADDR", "CHAT_INSTANCE_ID"} {
		if !used[n] {
			t.Errorf("no deployment file sets %s", n)
		}
	}
}

// --- Kubernetes -------------------------------------------------------------

var (
	docSep       = regexp.MustCompile(`(?m)^---[ \t]*$`)
	kindLine     = regexp.MustCompile(`(?m)^kind:[ \t]*(\S+)`)
	nameLine     = regexp.MustCompile(`(?m)^  name:[ \t]*(\S+)`)
	replicasLine = regexp.MustCompile(`(?m)^  replicas:[ \t]*(\d+)`)
	graceLine    = regexp.MustCompile(`(?m)^\s*terminationGracePeriodSeconds:[ \t]*(\d+)`)
	commandLine  = regexp.MustCompile(`(?m)^\s*command:[ \t]*\["/usr/local/bin/([a-z]+)"`)
	instanceID   = regexp.MustCompile(`name: CHAT_INSTANCE_ID\s+valueFrom:\s+fieldRef:\s+fieldPath: metadata\.name`)
)

type manifest struct{ kind, name, text string }

func manifests(text string) []manifest {
	var out []manifest
	for _, doc := range docSep.Split(text, -1) {
		k := kindLine.FindStringSubmatch(doc)
		if k == nil {
			continue
		}
		m := manifest{kind: k[1], text: doc}
		if n := nameLine.FindStringSubmatch(doc); n != nil {
			m.name = n[1]
		}
		out = append(out, m)
	}
	return out
}

// checkDeployment reports what a role's Deployment lacks.
func checkDeployment(doc string) []string {
	var bad []string
	need := func(ok bool, what string) {
		if !ok {
			bad = append(bad, what)
		}
	}
	need(regexp.MustCompile(`readinessProbe:\s+httpGet:\s+path: /readyz\s+port: (http|8080)`).MatchString(doc), "readinessProbe on /readyz")
	need(regexp.MustCompile(`livenessProbe:\s+httpGet:\s+path: /healthz\s+port: (http|8080)`).MatchString(doc), "livenessProbe on /healthz")
	need(strings.Contains(doc, "containerPort: 8080"), "containerPort 8080")
	r := replicasLine.FindStringSubmatch(doc)
	need(r != nil && r[1] == "2", "replicas: 2")
	g := graceLine.FindStringSubmatch(doc)
	grace := 0
	if g != nil {
		grace, _ = strconv.Atoi(g[1])
	}
	need(grace >= 15, "terminationGracePeriodSeconds of at least 15 (SIGTERM drains)")
	need(regexp.MustCompile(`configMapRef:\s+name: seqchat-config`).MatchString(doc), "envFrom the ConfigMap seqchat-config")
	need(regexp.MustCompile(`secretRef:\s+name: seqchat-secrets`).MatchString(doc), "envFrom the Secret seqchat-secrets")
	need(instanceID.MatchString(doc), "CHAT_INSTANCE_ID from metadata.name")
	need(regexp.MustCompile(`resources:\s+requests:[\s\S]*limits:`).MatchString(doc), "resource requests and limits")
	need(commandLine.MatchString(doc), "a command naming the role's binary")
	return bad
}

func TestDeploymentChecker(t *testing.T) {
	good := read(t, "k8s/sequencer.yaml")
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"as written", "", "", ""},
		{"no readiness probe", "path: /readyz", "path: /ready", "readinessProbe"},
		{"no liveness probe", "livenessProbe:", "livenessCheck:", "livenessProbe"},
		{"short grace", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 5", "terminationGracePeriodSeconds"},
		{"one replica", "\n  replicas: 2", "\n  replicas: 1", "replicas"},
		{"no secret", "secretRef:", "secretReference:", "Secret"},
		{"generated instance id", "fieldPath: metadata.name", "fieldPath: metadata.uid", "CHAT_INSTANCE_ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := good
			if tc.old != "" {
				if !strings.Contains(doc, tc.old) {
					t.Fatalf("k8s/sequencer.yaml no longer contains %q; update the test", tc.old)
				}
				doc = strings.Replace(doc, tc.old, tc.new, 1)
			}
			got := strings.Join(checkDeployment(doc), "; ")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("checkDeployment = %q, want a problem mentioning %q", got, tc.want)
			}
		})
	}
}

func TestKubernetes(t *testing.T) {
	paths, err := filepath.Glob("k8s/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var all []manifest
	for _, p := range paths {
		if p == filepath.Join("k8s", "nats-values.yaml") {
			continue // Helm values, not manifests
		}
		all = append(all, manifests(read(t, p))...)
	}
	byKind := map[string][]manifest{}
	for _, m := range all {
		byKind[m.kind] = append(byKind[m.kind], m)
	}

	var deployed []string
	for _, d := range byKind["Deployment"] {
		t.Run("Deployment/"+d.name, func(t *testing.T) {
			for _, p := range checkDeployment(d.text) {
				t.Errorf("Deployment %s lacks %s", d.name, p)
			}
		})
		if c := commandLine.FindStringSubmatch(d.text); c != nil {
			deployed = append(deployed, c[1])
		}
	}
	slices.Sort(deployed)
	want := slices.Sorted(slices.Values(roles))
	if !slices.Equal(deployed, want) {
		t.Errorf("Deployments run %q, want one per role %q", deployed, want)
	}

	names := func(kind string) []string {
		var ns []string
		for _, m := range byKind[kind] {
			ns = append(ns, m.name)
		}
		return ns
	}
	for _, svc := range []string{"api", "edge"} {
		if !slices.Contains(names("Service"), svc) {
			t.Errorf("no Service %s", svc)
		}
	}
	for _, kind := range []string{"Namespace", "ConfigMap", "Secret", "Ingress"} {
		if len(byKind[kind]) == 0 {
			t.Errorf("no %s", kind)
		}
	}
	for _, cm := range byKind["ConfigMap"] {
		if regexp.MustCompile(`(?m)^\s+(CHAT_TOKEN_SECRET|CHAT_POSTGRES_URL):`).MatchString(cm.text) {
			t.Errorf("ConfigMap %s holds a secret setting; it belongs in the Secret", cm.name)
		}
		if !regexp.MustCompile(`CHAT_STREAM_REPLICAS:\s*"3"`).MatchString(cm.text) {
			t.Errorf("ConfigMap %s: want CHAT_STREAM_REPLICAS \"3\" (the NATS cluster has three nodes)", cm.name)
		}
	}
	for _, s := range byKind["Secret"] {
		for _, k := range []string{"CHAT_TOKEN_SECRET:", "CHAT_POSTGRES_URL:"} {
			if !strings.Contains(s.text, k) {
				t.Errorf("Secret %s lacks %s", s.name, strings.TrimSuffix(k, ":"))
			}
		}
	}
	for _, ing := range byKind["Ingress"] {
		if !regexp.MustCompile(`path: /v1/ws[\s\S]*?name: edge`).MatchString(ing.text) {
			t.Errorf("Ingress %s does not send /v1/ws to the edge Service", ing.name)
		}
		if !strings.Contains(ing.text, "proxy-read-timeout") {
			t.Errorf("Ingress %s keeps the default read timeout, which cuts quiet WebSockets", ing.name)
		}
	}

	values := read(t, "k8s/nats-values.yaml")
	for _, re := range []string{`cluster:\s+enabled: true\s+replicas: 3`, `jetstream:\s+enabled: true`, `fileStore:\s+enabled: true`, `pvc:\s+enabled: true`} {
		if !regexp.MustCompile(re).MatchString(values) {
			t.Errorf("k8s/nats-values.yaml does not match %s", re)
		}
	}
}

// --- compose ----------------------------------------------------------------

var (
	topKey      = regexp.MustCompile(`(?m)^[a-z][a-z0-9_-]*:`)
	serviceKey  = regexp.MustCompile(`(?m)^  ([a-z0-9][a-z0-9_-]*):[ \t]*$`)
	roleCommand = regexp.MustCompile(`(?m)^    command:[ \t]*\["([a-z]+)"`)
	natsURL     = regexp.MustCompile(`(?m)CHAT_NATS_URL:[ \t]*(\S+)`)
)

// composeServices returns each service's name and text (its indented block).
func composeServices(text string) map[string]string {
	i := strings.Index(text, "\nservices:")
	if i < 0 {
		return nil
	}
	body := text[i+len("\nservices:"):]
	if j := topKey.FindStringIndex(body); j != nil {
		body = body[:j[0]]
	}
	out := map[string]string{}
	locs := serviceKey.FindAllStringSubmatchIndex(body, -1)
	for k, l := range locs {
		end := len(body)
		if k+1 < len(locs) {
			end = locs[k+1][0]
		}
		out[body[l[2]:l[3]]] = body[l[0]:end]
	}
	return out
}

// checkCompose reports what the compose file lacks: three NATS nodes, each
// with its own config; at least two replicas of every role; CHAT_NATS_URL
// naming the three nodes; streams replicated three times.
func checkCompose(text string) []string {
	var bad []string
	services := composeServices(text)
	var nats []string
	count := map[string]int{}
	for name, block := range services {
		if strings.HasPrefix(name, "nats-") {
			nats = append(nats, name)
			if !regexp.MustCompile(`\./nats/` + regexp.QuoteMeta(name) + `\.conf:`).MatchString(block) {
				bad = append(bad, name+" does not mount ./nats/"+name+".conf")
			}
		}
		if c := roleCommand.FindStringSubmatch(block); c != nil {
			count[c[1]]++
		}
	}
	slices.Sort(nats)
	if len(nats) != 3 {
		bad = append(bad, fmt.Sprintf("want three NATS nodes, have %q", nats))
	}
	for _, r := range roles {
		if count[r] < 2 {
			bad = append(bad, fmt.Sprintf("want two replicas of %s, have %d", r, count[r]))
		}
	}
	m := natsURL.FindStringSubmatch(text)
	if m == nil {
		bad = append(bad, "no CHAT_NATS_URL")
	} else {
		var hosts []string
		for _, u := range strings.Split(m[1], ",") {
			h, _, _ := strings.Cut(strings.TrimPrefix(u, "nats://"), ":")
			hosts = append(hosts, h)
		}
		slices.Sort(hosts)
		if len(nats) == 0 || !slices.Equal(hosts, nats) {
			bad = append(bad, fmt.Sprintf("CHAT_NATS_URL names %q, want the NATS nodes %q", hosts, nats))
		}
	}
	if !regexp.MustCompile(`CHAT_STREAM_REPLICAS:[ \t]*"?3"?`).MatchString(text) {
		bad = append(bad, "CHAT_STREAM_REPLICAS is not 3")
	}
	if !regexp.MustCompile(`CHAT_HTTP_ADDR:[ \t]*"?0\.0\.0\.0:8080"?`).MatchString(text) {
		bad = append(bad, "CHAT_HTTP_ADDR is not 0.0.0.0:8080")
	}
	if !strings.Contains(text, "CHAT_TOKEN_SECRET:") {
		bad = append(bad, "no shared CHAT_TOKEN_SECRET")
	}
	for _, img := range []string{"postgres:16", "redis:7", "nginx:"} {
		if !strings.Contains(text, "image: "+img) {
			bad = append(bad, "no "+img+" service")
		}
	}
	return bad
}

func TestComposeChecker(t *testing.T) {
	good := read(t, "compose.yaml")
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"as written", "", "", ""},
		{"two NATS nodes", "  nats-3:\n", "  natz-3:\n", "three NATS nodes"},
		{"one edge", "  edge-2:\n    <<: *chat\n    command: [\"edge\"]", "  edge-2:\n    <<: *chat\n    command: [\"chatd\"]", "two replicas of edge"},
		{"one NATS URL", "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222", "nats://nats-1:4222", "CHAT_NATS_URL"},
		{"unreplicated streams", `CHAT_STREAM_REPLICAS: "3"`, `CHAT_STREAM_REPLICAS: "1"`, "CHAT_STREAM_REPLICAS"},
		{"loopback only", "CHAT_HTTP_ADDR: 0.0.0.0:8080", "CHAT_HTTP_ADDR: 127.0.0.1:8080", "CHAT_HTTP_ADDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := good
			if tc.old != "" {
				if !strings.Contains(text, tc.old) {
					t.Fatalf("compose.yaml no longer contains %q; update the test", tc.old)
				}
				text = strings.Replace(text, tc.old, tc.new, 1)
			}
			got := strings.Join(checkCompose(text), "; ")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("checkCompose = %q, want a problem mentioning %q", got, tc.want)
			}
		})
	}
}

// --- NATS, nginx, Dockerfile --------------------------------------------------

func TestNATSConfigs(t *testing.T) {
	paths, err := filepath.Glob("nats/*.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Fatalf("want three NATS configs, have %q", paths)
	}
	names := map[string]bool{}
	for _, p := range paths {
		text := read(t, p)
		field := func(re string) string {
			m := regexp.MustCompile(re).FindStringSubmatch(text)
			if m == nil {
				t.Errorf("%s: nothing matches %s", p, re)
				return ""
			}
			return m[1]
		}
		names[field(`(?m)^server_name:\s*(\S+)`)] = true
		if c := field(`(?m)^\s+name:\s*(\S+)`); c != "seqchat" {
			t.Errorf("%s: cluster name %q, want seqchat", p, c)
		}
		field(`jetstream\s*\{[^}]*store_dir:\s*(\S+)`)
		field(`jetstream\s*\{[^}]*max_memory_store:\s*(\S+)`)
		field(`jetstream\s*\{[^}]*max_file_store:\s*(\S+)`)
		for i := 1; i <= 3; i++ {
			if !strings.Contains(text, fmt.Sprintf("nats-route://nats-%d:6222", i)) {
				t.Errorf("%s: no route to nats-%d", p, i)
			}
		}
	}
	if len(names) != 3 {
		t.Errorf("server names %v: every JetStream node needs its own", names)
	}
}

func TestNginx(t *testing.T) {
	text := read(t, "nginx.conf")
	ws := regexp.MustCompile(`location = /v1/ws \{([^}]*)\}`).FindStringSubmatch(text)
	if ws == nil {
		t.Fatal("no location for /v1/ws")
	}
	for _, want := range []string{"proxy_pass http://edge;", "proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;", "proxy_set_header Connection $connection_upgrade;"} {
		if !strings.Contains(ws[1], want) {
			t.Errorf("/v1/ws location lacks %q", want)
		}
	}
	m := regexp.MustCompile(`proxy_read_timeout\s+(\S+);`).FindStringSubmatch(ws[1])
	if m == nil {
		t.Error("/v1/ws keeps nginx's 60s read timeout")
	} else if d, err := time.ParseDuration(m[1]); err != nil || d < 5*time.Minute {
		t.Errorf("/v1/ws read timeout %s, want at least 5m", m[1])
	}
	if !regexp.MustCompile(`location / \{[^}]*proxy_pass http://api;`).MatchString(text) {
		t.Error("REST does not go to the api")
	}
	if !strings.Contains(text, "listen 8080;") {
		t.Error("nginx does not listen on 8080")
	}
	// The upstreams name exactly the compose services of each role.
	services := composeServices(read(t, "compose.yaml"))
	for _, role := range []string{"api", "edge"} {
		up := regexp.MustCompile(`upstream ` + role + ` \{([^}]*)\}`).FindStringSubmatch(text)
		if up == nil {
			t.Errorf("no upstream %s", role)
			continue
		}
		var servers, want []string
		for _, s := range regexp.MustCompile(`server ([a-z0-9-]+):8080`).FindAllStringSubmatch(up[1], -1) {
			servers = append(servers, s[1])
		}
		for name, block := range services {
			if c := roleCommand.FindStringSubmatch(block); c != nil && c[1] == role {
				want = append(want, name)
			}
		}
		slices.Sort(servers)
		slices.Sort(want)
		if !slices.Equal(servers, want) {
			t.Errorf("upstream %s has %q, compose runs %q", role, servers, want)
		}
	}
}

func TestDockerfile(t *testing.T) {
	text := read(t, "Dockerfile")
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(text, -1)); n < 2 {
		t.Errorf("%d stages, want a builder and a runtime", n)
	}
	if !regexp.MustCompile(`(?m)^ARG GO_VERSION=1\.26\b`).MatchString(text) || !strings.Contains(text, "FROM golang:${GO_VERSION}") {
		t.Error("the builder is not golang:1.26")
	}
	for _, cmd := range append(slices.Clone(roles), "chatd") {
		if !strings.Contains(text, "./cmd/"+cmd) {
			t.Errorf("the image does not build cmd/%s", cmd)
		}
		if !regexp.MustCompile(`(?m)^COPY --from=build .*/out/` + cmd + `\b`).MatchString(text) {
			t.Errorf("the runtime stage lacks %s", cmd)
		}
	}
	if u := regexp.MustCompile(`(?m)^USER (\S+)`).FindStringSubmatch(text); u == nil || strings.HasPrefix(u[1], "root") || strings.HasPrefix(u[1], "0") {
		t.Error("the image runs as root")
	}
	if !regexp.MustCompile(`(?m)^EXPOSE 8080\b`).MatchString(text) {
		t.Error("no EXPOSE 8080")
	}
	if regexp.MustCompile(`(?m)^HEALTHCHECK`).MatchString(text) {
		t.Error("HEALTHCHECK: leave probing to the orchestrator")
	}
	if regexp.MustCompile(`(?m)^ENTRYPOINT`).MatchString(text) {
		t.Error("ENTRYPOINT: the command must choose the role")
	}
}

// --- compose.services.yaml ---------------------------------------------------

var publishedPort = regexp.MustCompile(`(?m)^      - "([^"]+)"`)

// checkServicesCompose reports what the services-only compose file gets
// wrong: it must hold PostgreSQL and Redis and nothing else, on the ports
// and with the password-less login chatd's defaults expect, published on
// loopback only (trust auth must not be reachable from the network).
func checkServicesCompose(text string) []string {
	var bad []string
	services := composeServices(text)
	want := map[string]string{"postgres": "127.0.0.1:5432:5432", "redis": "127.0.0.1:6379:6379"}
	for name := range services {
		if _, ok := want[name]; !ok {
			bad = append(bad, "unexpected service "+name)
		}
	}
	for name, port := range want {
		s, ok := services[name]
		if !ok {
			bad = append(bad, "no service "+name)
			continue
		}
		ports := publishedPort.FindAllStringSubmatch(s, -1)
		if len(ports) != 1 || ports[0][1] != port {
			bad = append(bad, fmt.Sprintf("%s must publish exactly %q, has %v", name, port, ports))
		}
	}
	if !strings.Contains(services["postgres"], "POSTGRES_HOST_AUTH_METHOD: trust") {
		bad = append(bad, "postgres must use trust auth (chatd's default URL has no password)")
	}
	return bad
}

func TestServicesCompose(t *testing.T) {
	b, err := os.ReadFile("compose.services.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range checkServicesCompose(string(b)) {
		t.Error("compose.services.yaml: " + msg)
	}
	broken := strings.Replace(string(b), `"127.0.0.1:6379:6379"`, `"6379:6379"`, 1)
	broken = strings.Replace(broken, "\nvolumes:", "\n  nats:\n    image: nats\n\nvolumes:", 1)
	if got := checkServicesCompose(broken); len(got) != 2 {
		t.Errorf("a published-to-all Redis and an extra service gave %v", got)
	}
}
