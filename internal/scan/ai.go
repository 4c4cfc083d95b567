package scan

import (
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// product describes an AI/ML server that is dangerous when it is both
// reachable and unauthenticated. Binding to 0.0.0.0 inside the pod is
// normal (the official charts do it) and is never looked at.
type product struct {
	rule  string
	name  string
	image *regexp.Regexp // matched against the image reference
	args  *regexp.Regexp // matched against command + args joined by spaces
	// auth reports whether the product's own authentication is on, and a
	// description of the state for the message. nil: the product has no
	// built-in authentication, only an auth proxy helps.
	auth        func(c *corev1.Container) (bool, string)
	remediation string
	refs        []string
}

// aiCandidate is a detected product awaiting the exposure verdict.
type aiCandidate struct {
	rule, product, container, image string
	authState                       string
	hasAuth                         bool
	ref                             objRef
	ns                              string
	labels                          map[string]string
	intrinsic                       []string
}

func joinedArgs(c *corev1.Container) string {
	return strings.Join(append(append([]string{}, c.Command...), c.Args...), " ")
}

// envSet reports whether name is set to a non-empty literal or from a
// Secret/ConfigMap reference.
func envSet(c *corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return e.ValueFrom != nil || strings.TrimSpace(e.Value) != ""
		}
	}
	return false
}

func envIs(c *corev1.Container, name string, vals ...string) bool {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			for _, v := range vals {
				if strings.EqualFold(strings.TrimSpace(e.Value), v) {
					return true
				}
			}
		}
	}
	return false
}

func hasFlag(c *corev1.Container, flag string) bool {
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		if a == flag || strings.HasPrefix(a, flag+"=") || strings.Contains(a, " "+flag+" ") ||
			strings.Contains(a, " "+flag+"=") || strings.HasPrefix(a, flag+" ") {
			return true
		}
	}
	return false
}

var (
	jupyterNoTokenRE = regexp.MustCompile(`--(ServerApp|NotebookApp|IdentityProvider)\.token=(''|""|)(\s|$)`)
	mlflowBasicAuth  = regexp.MustCompile(`--app-name[= ]basic-auth`)
)

var products = []product{
	{rule: "AI001", name: "Ollama", image: regexp.MustCompile(`(^|/)ollama/ollama([:@]|$)`), args: regexp.MustCompile(`(^|\s|/)ollama serve`),
		remediation: "Ollama has no authentication: keep its Service ClusterIP, restrict it with a NetworkPolicy and put an authenticating proxy (e.g. Warden) in front.",
		refs:        []string{"CVE-2024-37032", "CVE-2026-7482"}},
	{rule: "AI002", name: "vLLM", image: regexp.MustCompile(`(^|/)vllm/vllm-openai|vllm-openai|lmcache/[^:@]*vllm|(^|/)vllm([:@]|$)`), args: regexp.MustCompile(`(^|\s|/)vllm\s+serve\b|vllm\.entrypoints`),
		auth: func(c *corev1.Container) (bool, string) {
			return hasFlag(c, "--api-key") || envSet(c, "VLLM_API_KEY"), "no --api-key / VLLM_API_KEY"
		},
		remediation: "Start vLLM with --api-key (from a Secret), restrict it with a NetworkPolicy, and allow-list paths at a proxy: the key does not cover /invocations, /tokenize and others.",
		refs:        []string{"https://docs.vllm.ai/en/stable/usage/security/"}},
	{rule: "AI003", name: "Text Generation Inference", image: regexp.MustCompile(`text-generation-inference`), args: regexp.MustCompile(`text-generation-launcher`),
		auth: func(c *corev1.Container) (bool, string) {
			return hasFlag(c, "--api-key") || envSet(c, "API_KEY"), "no --api-key / API_KEY"
		},
		remediation: "Set API_KEY (from a Secret) or --api-key and keep the Service internal behind an authenticating proxy.",
		refs:        []string{"https://github.com/huggingface/text-generation-inference"}},
	{rule: "AI004", name: "NVIDIA Triton", image: regexp.MustCompile(`tritonserver`), args: regexp.MustCompile(`(^|\s|/)tritonserver\b`),
		auth: func(c *corev1.Container) (bool, string) {
			return hasFlag(c, "--http-restricted-api") || hasFlag(c, "--grpc-restricted-protocol"), "no authentication (no --http-restricted-api / --grpc-restricted-protocol)"
		},
		remediation: "Keep Triton internal behind an authenticating proxy; restrict the model-control and shared-memory APIs with --http-restricted-api/--grpc-restricted-protocol; upgrade to ≥ 25.07.",
		refs:        []string{"CVE-2025-23319", "CVE-2025-23320", "CVE-2025-23334"}},
	{rule: "AI005", name: "Ray head (dashboard / Jobs API)", image: regexp.MustCompile(`(^|/)rayproject/ray(-ml|-llm)?([:@]|$)`), args: regexp.MustCompile(`ray start\s.*--head`),
		auth: func(c *corev1.Container) (bool, string) {
			return envIs(c, "RAY_AUTH_MODE", "token") && envSet(c, "RAY_AUTH_TOKEN"), "no token authentication (RAY_AUTH_MODE=token / authOptions.mode: token)"
		},
		remediation: "Enable Ray token authentication (KubeRay spec.authOptions.mode: token, Ray ≥ 2.52), keep the head Service ClusterIP and restrict port 8265 with a NetworkPolicy.",
		refs:        []string{"CVE-2023-48022 (ShadowRay)", "https://docs.ray.io/en/latest/ray-security/token-auth.html"}},
	{rule: "AI006", name: "MLflow tracking server", image: regexp.MustCompile(`(^|/)(mlflow/mlflow|bitnami/mlflow|burakince/mlflow)([:@]|$)|/mlflow([:@]|$)`), args: regexp.MustCompile(`mlflow\s+(server|ui)\b`),
		auth: func(c *corev1.Container) (bool, string) {
			return mlflowBasicAuth.MatchString(joinedArgs(c)), "no authentication (no --app-name basic-auth)"
		},
		remediation: "Run mlflow server --app-name basic-auth (or behind an OIDC proxy) and keep the Service internal.",
		refs:        []string{"CVE-2023-1177", "CVE-2023-6730"}},
	{rule: "AI007", name: "Jupyter server", image: regexp.MustCompile(`(^|/)jupyter/[^:@]+|quay\.io/jupyter/|jupyterlab`), args: regexp.MustCompile(`jupyter[ -](lab|notebook|server)\b|start-notebook|start-singleuser`),
		auth: func(c *corev1.Container) (bool, string) {
			a := joinedArgs(c)
			return !jupyterNoTokenRE.MatchString(a) && !envIs(c, "JUPYTER_TOKEN", ""), "token authentication disabled (empty token)"
		},
		remediation: "Do not disable the Jupyter token; put the server behind JupyterHub or an OIDC proxy and keep it internal.",
		refs:        []string{"https://arxiv.org/abs/2409.19456"}},
	{rule: "AI008", name: "Open WebUI", image: regexp.MustCompile(`open-webui/open-webui`),
		auth: func(c *corev1.Container) (bool, string) {
			return !envIs(c, "WEBUI_AUTH", "false", "0", "no"), "login disabled (WEBUI_AUTH=false)"
		},
		remediation: "Leave WEBUI_AUTH enabled; Open WebUI can run code and tools on the user's behalf.",
		refs:        []string{"https://docs.openwebui.com/getting-started/env-configuration"}},
	{rule: "AI009", name: "Qdrant", image: regexp.MustCompile(`(^|/)qdrant/qdrant([:@]|$)`),
		auth: func(c *corev1.Container) (bool, string) {
			return envSet(c, "QDRANT__SERVICE__API_KEY"), "no API key (QDRANT__SERVICE__API_KEY)"
		},
		remediation: "Set QDRANT__SERVICE__API_KEY from a Secret and enable TLS; keep the Service internal.",
		refs:        []string{"https://qdrant.tech/documentation/guides/security"}},
	{rule: "AI010", name: "Weaviate", image: regexp.MustCompile(`semitechnologies/weaviate`),
		auth: func(c *corev1.Container) (bool, string) {
			on := envIs(c, "AUTHENTICATION_APIKEY_ENABLED", "true") || envIs(c, "AUTHENTICATION_OIDC_ENABLED", "true")
			return on && !envIs(c, "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED", "true"), "anonymous access (no API key or OIDC authentication)"
		},
		remediation: "Set AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED=false and enable API-key or OIDC authentication; the chart defaults to a LoadBalancer.",
		refs:        []string{"https://docs.weaviate.io/deploy/configuration/authentication"}},
	{rule: "AI011", name: "Milvus", image: regexp.MustCompile(`(^|/)milvusdb/milvus([:@]|$)`),
		auth: func(c *corev1.Container) (bool, string) {
			return envIs(c, "COMMON_SECURITY_AUTHORIZATIONENABLED", "true"), "authorization disabled (common.security.authorizationEnabled)"
		},
		remediation: "Enable common.security.authorizationEnabled, change the default root password and the bundled MinIO keys.",
		refs:        []string{"https://milvus.io/docs/authenticate.md"}},
	{rule: "AI013", name: "Chroma", image: regexp.MustCompile(`(^|/)(chroma-core/chroma|chromadb/chroma)([:@]|$)`),
		remediation: "Chroma ≥ 1.0 has no built-in authentication: keep it internal behind an authenticating proxy and a NetworkPolicy.",
		refs:        []string{"https://github.com/amikos-tech/chromadb-chart"}},
	{rule: "AI014", name: "MCP server", image: regexp.MustCompile(`(?i)(^|[/_-])mcp([/_:@-]|$)|mcp-server|server-mcp`), args: regexp.MustCompile(`@modelcontextprotocol/server-|\bmcp-proxy\b|--transport[= ](sse|streamable-http|http)\b`),
		auth: func(c *corev1.Container) (bool, string) {
			for _, e := range c.Env {
				n := strings.ToUpper(e.Name)
				if (strings.HasPrefix(n, "MCP_AUTH") || strings.HasPrefix(n, "OAUTH") || n == "MCP_API_KEY" || n == "MCP_TOKEN" || n == "AUTH_TOKEN") &&
					(e.ValueFrom != nil || e.Value != "") {
					return true, ""
				}
			}
			return hasFlag(c, "--auth") || hasFlag(c, "--oauth") || hasFlag(c, "--api-key"), "no inbound authentication (OAuth or bearer token)"
		},
		remediation: "Require OAuth 2.1 or a bearer token on the MCP endpoint (or front it with Warden), keep the Service internal and give the pod a minimal ServiceAccount.",
		refs:        []string{"https://modelcontextprotocol.io/specification/2025-06-18/basic/authorization"}},
	{rule: "AI015", name: "Code-executing agent UI", image: regexp.MustCompile(`(^|/)(mageai/mageai|langflowai/langflow|flowiseai/flowise)([:@]|$)|autogenstudio`), args: regexp.MustCompile(`autogenstudio\s+ui`),
		auth: func(c *corev1.Container) (bool, string) {
			img := c.Image
			switch {
			case strings.Contains(img, "mageai"):
				return envIs(c, "REQUIRE_USER_AUTHENTICATION", "1", "true"), "user authentication off (REQUIRE_USER_AUTHENTICATION)"
			case strings.Contains(img, "langflow"):
				return envIs(c, "LANGFLOW_AUTO_LOGIN", "false"), "auto-login on (LANGFLOW_AUTO_LOGIN not false)"
			case strings.Contains(img, "flowise"):
				return envSet(c, "FLOWISE_USERNAME") && envSet(c, "FLOWISE_PASSWORD"), "no login (FLOWISE_USERNAME/FLOWISE_PASSWORD)"
			}
			return false, "no authentication"
		},
		remediation: "Turn on the UI's login, keep the Service internal, and never bind its ServiceAccount to cluster-admin: these UIs run arbitrary code.",
		refs:        []string{"https://al-ice.ai/posts/2026/05/microsoft-exploitable-misconfigurations-ai-apps-mcp-mage-2026/"}},
}

// authProxyRE matches sidecars that authenticate before the product sees
// a request.
var authProxyRE = regexp.MustCompile(`oauth2-proxy|kube-rbac-proxy|pomerium|authelia|wardenhq/warden|ext-?authz`)

func init() {
	for i := range products {
		p := &products[i]
		goRules[p.rule] = &Rule{ID: p.rule, Severity: SeverityCritical,
			Title:       p.name + " exposed without authentication",
			Remediation: p.remediation, References: p.refs}
	}
}

// detectAI finds AI products in one pod and decides their authentication
// state; exposure is decided once the whole input is read.
func (ss *session) detectAI(o *Object, t *podTarget) []aiCandidate {
	gk := o.GroupKind()
	if gk == "kubeflow.org/Notebook" {
		// Kubeflow runs notebooks token-less on purpose, behind Istio and
		// oauth2-proxy: not a finding (a known false-positive trap).
		return nil
	}
	isRay := o.Group() == "ray.io"
	if isRay && !strings.Contains(t.Path, "headGroupSpec") {
		return nil // workers expose nothing; the head carries dashboard and GCS
	}
	proxied := false
	for i := range t.Spec.Containers {
		if authProxyRE.MatchString(t.Spec.Containers[i].Image) {
			proxied = true
		}
	}
	lbl := t.Meta.Labels
	var out []aiCandidate
	for i := range t.Spec.Containers {
		c := &t.Spec.Containers[i]
		args := joinedArgs(c)
		for pi := range products {
			p := &products[pi]
			hit := p.image.MatchString(c.Image) || (p.args != nil && p.args.MatchString(args))
			if p.rule == "AI005" && isRay {
				hit = i == 0 // the head's Ray container, whatever the image
			}
			if !hit {
				continue
			}
			cand := aiCandidate{rule: p.rule, product: p.name, container: c.Name, image: c.Image,
				ref: refOf(o, o.lineOfPath(t.Path, "containers", i)), ns: o.ns(), labels: lbl,
				authState: "no built-in authentication and no authenticating proxy"}
			if p.auth != nil {
				cand.hasAuth, cand.authState = p.auth(c)
			}
			if p.rule == "AI005" && isRay && rayTokenAuth(o) {
				cand.hasAuth = true
			}
			if proxied {
				cand.hasAuth = true
			}
			if t.Spec.HostNetwork {
				cand.intrinsic = append(cand.intrinsic, "hostNetwork: true")
			}
			for _, port := range c.Ports {
				if port.HostPort != 0 {
					cand.intrinsic = append(cand.intrinsic, fmt.Sprintf("hostPort %d", port.HostPort))
				}
			}
			if isRay {
				cand.intrinsic = append(cand.intrinsic, rayExposure(o)...)
			}
			out = append(out, cand)
			break // one product per container
		}
	}
	return out
}

// rayClusterSpec returns the RayCluster spec inside RayCluster, RayService
// or RayJob.
func rayClusterSpec(o *Object) map[string]any {
	switch o.Kind {
	case "RayService":
		return getMap(o.Raw, "spec", "rayClusterConfig")
	case "RayJob":
		return getMap(o.Raw, "spec", "rayClusterSpec")
	}
	return getMap(o.Raw, "spec")
}

func rayTokenAuth(o *Object) bool {
	return strings.EqualFold(getString(rayClusterSpec(o), "authOptions", "mode"), "token")
}

func rayExposure(o *Object) []string {
	var out []string
	spec := rayClusterSpec(o)
	switch t := getString(spec, "headGroupSpec", "serviceType"); t {
	case "LoadBalancer", "NodePort":
		out = append(out, "headGroupSpec.serviceType "+t)
	}
	if v, _ := getMap(spec, "headGroupSpec")["enableIngress"].(bool); v {
		out = append(out, "headGroupSpec.enableIngress: true")
	}
	return out
}

// checkInferenceService flags KServe services reachable through the
// cluster ingress without authentication (AI012).
func (ss *session) checkInferenceService(o *Object) {
	if o.Labels["networking.kserve.io/visibility"] == "cluster-local" {
		return
	}
	for _, k := range []string{"security.opendatahub.io/enable-auth", "serving.kserve.io/enable-auth"} {
		if strings.EqualFold(o.Annotations[k], "true") {
			return
		}
	}
	ss.emit(o, RuleKServeExposed, o.Line, fmt.Sprintf("InferenceService %q is routed through the ingress gateway (no networking.kserve.io/visibility: cluster-local label) and has no enable-auth annotation", o.Name))
}
