package scan

import (
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// secretNameRE matches variable and ConfigMap key names that usually hold
// credentials; secretNameExceptRE removes the names that only point at or
// describe one (TOKEN_PATH, AUTH_ENABLED, RAY_AUTH_MODE).
var (
	secretNameRE       = regexp.MustCompile(`(?i)(passw(or)?d|secret|token|api_?key|access_?key|private_?key|credential|auth)`)
	secretNameExceptRE = regexp.MustCompile(`(?i)(_(file|path|dir|url|uri|host|port|enabled|enable|mode|type|name|ttl|expiry|header|length|provider|method|issuer|audience)|^auth(enticat|ori[sz])\w*)$`)
	// secretValueRE matches well-known credential formats whatever the key.
	secretValueRE = regexp.MustCompile(`(^|[^A-Za-z0-9])(hf_[A-Za-z0-9]{30,}|sk-(ant-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36}|xox[baprs]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{20}|-----BEGIN [A-Z ]*PRIVATE KEY-----)`)
)

// modelHubTokens are credentials for model hubs and AI APIs; a literal
// value is reported as AI021 rather than the generic K8S020.
var modelHubTokens = map[string]bool{
	"HF_TOKEN": true, "HUGGING_FACE_HUB_TOKEN": true, "HUGGINGFACEHUB_API_TOKEN": true, "HF_API_TOKEN": true,
	"OPENAI_API_KEY": true, "ANTHROPIC_API_KEY": true, "WANDB_API_KEY": true, "COHERE_API_KEY": true,
	"MISTRAL_API_KEY": true, "GROQ_API_KEY": true, "GEMINI_API_KEY": true, "GOOGLE_API_KEY": true,
	"REPLICATE_API_TOKEN": true, "TOGETHER_API_KEY": true, "NGC_API_KEY": true, "KAGGLE_KEY": true,
	"VLLM_API_KEY": true, "QDRANT__SERVICE__API_KEY": true, "LANGCHAIN_API_KEY": true,
	"LANGSMITH_API_KEY": true, "PINECONE_API_KEY": true, "AZURE_OPENAI_API_KEY": true,
}

func looksLikeSecretName(name string) bool {
	return secretNameRE.MatchString(name) && !secretNameExceptRE.MatchString(name)
}

// literalSecret reports whether a literal value under name is a credential.
func literalSecret(name, value string) bool {
	v := strings.TrimSpace(value)
	if v == "" {
		return false
	}
	if secretValueRE.MatchString(v) {
		return true
	}
	if !looksLikeSecretName(name) {
		return false
	}
	switch strings.ToLower(v) {
	case "true", "false", "yes", "no", "on", "off", "none", "null", "token", "changeme":
		// "changeme" is still a placeholder, not a leak; booleans are switches.
		return false
	}
	// $(VAR) expansions and file paths are references, not values.
	if strings.HasPrefix(v, "$(") || strings.HasPrefix(v, "/") {
		return false
	}
	return true
}

// checkContainers runs the per-container hardening, image, secret and GPU
// rules on one pod spec.
func (s *session) checkContainers(o *Object, t *podTarget, serving bool) {
	gpuPod := podRequestsGPU(t.Spec) || strings.Contains(strings.ToLower(derefString(t.Spec.RuntimeClassName)), "nvidia")
	infra := s.s.cfg.gpuInfra(o.ns())
	for _, cr := range allContainers(t) {
		c := cr.C
		line := o.lineOfPath(cr.Path)
		s.checkImage(o, c, line)
		for i, e := range c.Env {
			if e.ValueFrom != nil {
				continue
			}
			eline := o.lineOfPath(cr.Path, "env", i)
			if literalSecret(e.Name, e.Value) {
				if modelHubTokens[strings.ToUpper(e.Name)] {
					s.emit(o, RuleModelHubToken, eline, fmt.Sprintf("container %q sets %s as a literal value", c.Name, e.Name))
				} else {
					s.emit(o, RuleSecretLiteralEnv, eline, fmt.Sprintf("container %q sets %s as a literal value", c.Name, e.Name))
				}
			}
			if strings.EqualFold(e.Name, "NVIDIA_VISIBLE_DEVICES") && strings.EqualFold(strings.TrimSpace(e.Value), "all") &&
				!containerRequestsGPU(c) && !infra {
				s.emit(o, RuleGPUVisibleAll, eline, fmt.Sprintf("container %q sets NVIDIA_VISIBLE_DEVICES=all without requesting nvidia.com/gpu, so it may see every GPU on the node", c.Name))
			}
			if e.Name == "LD_PRELOAD" && gpuPod && e.Value != "" {
				s.emit(o, RuleGPULDPreload, eline, fmt.Sprintf("container %q sets LD_PRELOAD in a GPU pod", c.Name))
			}
		}
		if gpuPod && !infra && c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			s.emit(o, RuleGPUPrivileged, o.lineOfPath(cr.Path, "securityContext", "privileged"),
				fmt.Sprintf("GPU container %q is privileged", c.Name))
		}
		if hasTrustRemoteCode(c) {
			s.emit(o, RuleTrustRemoteCode, line, fmt.Sprintf("container %q runs a model with --trust-remote-code", c.Name))
		}
		if cr.Init || strings.Contains(cr.Path, "ephemeralContainers") {
			continue
		}
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
			s.emit(o, RuleMissingRequests, line, fmt.Sprintf("container %q has no CPU request", c.Name))
		} else if _, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok {
			s.emit(o, RuleMissingRequests, line, fmt.Sprintf("container %q has no memory request", c.Name))
		}
		if _, ok := c.Resources.Limits[corev1.ResourceCPU]; !ok {
			s.emit(o, RuleMissingCPULimit, line, fmt.Sprintf("container %q has no CPU limit", c.Name))
		}
		if serving {
			modelPaths := modelRepositoryArgs(c)
			for i, m := range c.VolumeMounts {
				if m.ReadOnly || !isModelPath(m.MountPath, modelPaths) {
					continue
				}
				s.emit(o, RuleModelWritable, o.lineOfPath(cr.Path, "volumeMounts", i),
					fmt.Sprintf("serving container %q mounts volume %q at %s writable", c.Name, m.Name, m.MountPath))
			}
		}
	}
	if !infra {
		for i, v := range t.Spec.Volumes {
			if v.HostPath == nil || !isGPUDevicePath(v.HostPath.Path) {
				continue
			}
			s.emit(o, RuleGPUHostPath, o.lineOfPath(t.Path, "volumes", i),
				fmt.Sprintf("volume %q mounts host path %s in namespace %q, which is not an allow-listed GPU infrastructure namespace", v.Name, v.HostPath.Path, o.ns()))
		}
	}
}

func (s *session) checkImage(o *Object, c *corev1.Container, line int) {
	img := strings.TrimSpace(c.Image)
	if img == "" {
		return
	}
	if strings.Contains(img, "@") {
		return // pinned by digest; a tag next to it is documentation
	}
	tag := ""
	last := img[strings.LastIndexByte(img, '/')+1:]
	if i := strings.LastIndexByte(last, ':'); i >= 0 {
		tag = last[i+1:]
	}
	if tag == "" || tag == "latest" {
		what := "no tag (implicitly latest)"
		if tag == "latest" {
			what = "the latest tag"
		}
		s.emit(o, RuleImageLatest, line, fmt.Sprintf("container %q uses image %s with %s", c.Name, img, what))
	}
	s.emit(o, RuleImageNoDigest, line, fmt.Sprintf("container %q uses image %s without a digest", c.Name, img))
}

func podRequestsGPU(spec *corev1.PodSpec) bool {
	for i := range spec.Containers {
		if containerRequestsGPU(&spec.Containers[i]) {
			return true
		}
	}
	return false
}

func containerRequestsGPU(c *corev1.Container) bool {
	for _, rl := range []corev1.ResourceList{c.Resources.Limits, c.Resources.Requests} {
		for name, q := range rl {
			n := string(name)
			if (strings.HasSuffix(n, "/gpu") || strings.HasPrefix(n, "nvidia.com/")) && !q.IsZero() {
				return true
			}
		}
	}
	return false
}

var gpuDevicePathRE = regexp.MustCompile(`^(/dev/nvidia|/dev/dri|/dev/kfd|/run/nvidia|/var/run/nvidia|/var/lib/kubelet/device-plugins)`)

func isGPUDevicePath(p string) bool { return gpuDevicePathRE.MatchString(p) }

var modelPathRE = regexp.MustCompile(`^(/mnt)?/models?(/|$)|^/model[-_]?(store|repository|repo)(/|$)|^/data/models?(/|$)|^/opt/ml/model(/|$)`)

func isModelPath(p string, extra []string) bool {
	if modelPathRE.MatchString(p) {
		return true
	}
	for _, e := range extra {
		if e != "" && (p == e || strings.HasPrefix(e, strings.TrimSuffix(p, "/")+"/")) {
			return true
		}
	}
	return false
}

// modelRepositoryArgs returns paths given to --model-repository or
// --model / --model-path style flags.
func modelRepositoryArgs(c *corev1.Container) []string {
	var out []string
	args := append(append([]string{}, c.Command...), c.Args...)
	for i, a := range args {
		for _, flag := range []string{"--model-repository", "--model-store", "--model", "--model-path", "--model-dir"} {
			if v, ok := strings.CutPrefix(a, flag+"="); ok && strings.HasPrefix(v, "/") {
				out = append(out, v)
			} else if a == flag && i+1 < len(args) && strings.HasPrefix(args[i+1], "/") {
				out = append(out, args[i+1])
			}
		}
	}
	return out
}

func hasTrustRemoteCode(c *corev1.Container) bool {
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		if a == "--trust-remote-code" || a == "--trust-remote-code=true" || strings.Contains(a, " --trust-remote-code") {
			return true
		}
	}
	for _, e := range c.Env {
		if strings.EqualFold(e.Name, "TRUST_REMOTE_CODE") && strings.EqualFold(e.Value, "true") {
			return true
		}
	}
	return false
}

func derefString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// checkConfigMap reports credential-looking keys in a ConfigMap by name.
func (s *session) checkConfigMap(o *Object) {
	data := getMap(o.Raw, "data")
	for _, k := range sortedKeys(data) {
		v := scalarString(data[k])
		if !literalSecret(k, v) {
			// Multi-line config files: look for well-known formats and
			// "key: value" / "key=value" lines with credential names.
			if !strings.Contains(v, "\n") || !embeddedSecret(v) {
				continue
			}
		}
		s.emit(o, RuleSecretInConfigMap, o.lineOf("data", k), fmt.Sprintf("ConfigMap key %q holds what looks like a credential", k))
	}
}

var embeddedKVRE = regexp.MustCompile(`(?m)^\s*"?([A-Za-z0-9_.-]+)"?\s*[:=]\s*"?([^"\s#]+)`)

func embeddedSecret(v string) bool {
	if secretValueRE.MatchString(v) {
		return true
	}
	for _, m := range embeddedKVRE.FindAllStringSubmatch(v, -1) {
		if literalSecret(m[1], m[2]) {
			return true
		}
	}
	return false
}
