package scan

// Rule is the metadata of a built-in Go rule. Rego rules carry the same
// fields in the objects their deny set yields.
type Rule struct {
	ID          string
	Severity    Severity
	Title       string
	Remediation string
	References  []string
	// OptIn rules run only when enabled in the config (Config.Enable) or
	// with Config.AllRules: they are disputed across tools (CPU limits).
	OptIn bool
}

// Built-in Go rule ids. They are stable: suppressions and SARIF baselines
// refer to them.
const (
	RuleNoDefaultDeny     = "K8S001"
	RuleSATokenAutomount  = "K8S015"
	RuleSecretLiteralEnv  = "K8S020"
	RuleSecretInConfigMap = "K8S021"
	RuleImageLatest       = "K8S030"
	RuleImageNoDigest     = "K8S031"
	RuleMissingRequests   = "K8S040"
	RuleMissingCPULimit   = "K8S041"

	RuleGPUVisibleAll    = "GPU001"
	RuleGPUPrivileged    = "GPU002"
	RuleGPUHostPath      = "GPU003"
	RuleGPULDPreload     = "GPU004"
	RuleModelWritable    = "AI020"
	RuleModelHubToken    = "AI021"
	RuleTrustRemoteCode  = "AI022"
	RuleKServeExposed    = "AI012"
	rulePSSPrefix        = "PSS-"
	ruleInputErrorPseudo = "INPUT"
)

var goRules = map[string]*Rule{
	RuleNoDefaultDeny: {ID: RuleNoDefaultDeny, Severity: SeverityMedium,
		Title:       "Namespace has no default-deny NetworkPolicy",
		Remediation: "Add a NetworkPolicy with an empty podSelector and policyTypes [Ingress, Egress] to the namespace, then allow the flows you need.",
		References:  []string{"CIS 5.3.2", "https://kubernetes.io/docs/concepts/services-networking/network-policies/#default-deny-all-ingress-and-all-egress-traffic"}},
	RuleSATokenAutomount: {ID: RuleSATokenAutomount, Severity: SeverityLow,
		Title:       "Service account token mounted but unused",
		Remediation: "Set automountServiceAccountToken: false on the pod (or its ServiceAccount) unless it calls the Kubernetes API.",
		References:  []string{"CIS 5.1.6"}},
	RuleSecretLiteralEnv: {ID: RuleSecretLiteralEnv, Severity: SeverityHigh,
		Title:       "Secret as a literal environment value",
		Remediation: "Move the value into a Secret and reference it with valueFrom.secretKeyRef (or mount it as a file).",
		References:  []string{"CIS 5.4.1"}},
	RuleSecretInConfigMap: {ID: RuleSecretInConfigMap, Severity: SeverityHigh,
		Title:       "Secret stored in a ConfigMap",
		Remediation: "Store credentials in a Secret (ideally from an external secret store), not a ConfigMap.",
		References:  []string{"CIS 5.4.1"}},
	RuleImageLatest: {ID: RuleImageLatest, Severity: SeverityMedium,
		Title:       "Image uses the latest tag or no tag",
		Remediation: "Pin the image to a version tag and, better, a digest (image@sha256:…).",
		References:  []string{"https://kubernetes.io/docs/concepts/containers/images/#image-names"}},
	RuleImageNoDigest: {ID: RuleImageNoDigest, Severity: SeverityLow,
		Title:       "Image not pinned by digest",
		Remediation: "Reference the image by digest (image:tag@sha256:…) so the bytes that run are the bytes that were reviewed.",
		References:  []string{"https://open-policy-agent.github.io/gatekeeper-library/website/validation/imagedigests"}},
	RuleMissingRequests: {ID: RuleMissingRequests, Severity: SeverityLow,
		Title:       "Container has no CPU or memory request",
		Remediation: "Set resources.requests.cpu and resources.requests.memory so the scheduler can place the pod and it is not the first evicted.",
		References:  []string{"https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/"}},
	RuleMissingCPULimit: {ID: RuleMissingCPULimit, Severity: SeverityLow, OptIn: true,
		Title:       "Container has no CPU limit (opt-in)",
		Remediation: "Set resources.limits.cpu if your platform requires it; CPU limits cause throttling, which is why this rule is opt-in.",
		References:  []string{"https://github.com/zegl/kube-score/issues/30"}},
	RuleGPUVisibleAll: {ID: RuleGPUVisibleAll, Severity: SeverityHigh,
		Title:       "NVIDIA_VISIBLE_DEVICES=all without a GPU request",
		Remediation: "Request GPUs with resources.limits[\"nvidia.com/gpu\"] and drop NVIDIA_VISIBLE_DEVICES; configure the container toolkit with accept-nvidia-visible-devices-envvar-when-unprivileged=false.",
		References:  []string{"https://github.com/NVIDIA/k8s-device-plugin/issues/1605"}},
	RuleGPUPrivileged: {ID: RuleGPUPrivileged, Severity: SeverityHigh,
		Title:       "Privileged GPU workload",
		Remediation: "GPU workloads get devices from the device plugin; remove privileged: true.",
		References:  []string{"PSS privileged", "CIS 5.2.2"}},
	RuleGPUHostPath: {ID: RuleGPUHostPath, Severity: SeverityHigh,
		Title:       "hostPath to GPU devices outside the device-plugin namespace",
		Remediation: "Request nvidia.com/gpu instead of mounting /dev/nvidia*; only the device plugin and GPU operator (allow-listed namespaces) need these paths.",
		References:  []string{"PSS hostPathVolumes", "CIS 5.2.12"}},
	RuleGPULDPreload: {ID: RuleGPULDPreload, Severity: SeverityMedium,
		Title:       "LD_PRELOAD set on a GPU workload",
		Remediation: "Remove LD_PRELOAD; it was the vector of the NVIDIAScape container-toolkit escape (CVE-2025-23266). Upgrade the NVIDIA container toolkit.",
		References:  []string{"CVE-2025-23266"}},
	RuleModelWritable: {ID: RuleModelWritable, Severity: SeverityMedium,
		Title:       "Model volume mounted writable into a serving container",
		Remediation: "Mount model volumes readOnly: true in serving containers; let an init container or a separate job write them.",
		References:  []string{"https://github.com/triton-inference-server/server/tree/main/deploy/k8s-onprem"}},
	RuleModelHubToken: {ID: RuleModelHubToken, Severity: SeverityHigh,
		Title:       "Model-hub or AI API token as a literal value",
		Remediation: "Store the token in a Secret and reference it with valueFrom.secretKeyRef; rotate the exposed token.",
		References:  []string{"CIS 5.4.1"}},
	RuleTrustRemoteCode: {ID: RuleTrustRemoteCode, Severity: SeverityMedium,
		Title:       "Model server trusts remote code",
		Remediation: "Drop --trust-remote-code, or pin the model repository to a reviewed revision.",
		References:  []string{"https://docs.vllm.ai/en/stable/usage/security/"}},
	RuleKServeExposed: {ID: RuleKServeExposed, Severity: SeverityHigh,
		Title:       "KServe InferenceService reachable through the ingress without authentication",
		Remediation: "Label it networking.kserve.io/visibility: cluster-local, or enable authentication (annotation security.opendatahub.io/enable-auth: \"true\" or an Istio AuthorizationPolicy).",
		References:  []string{"https://kserve.github.io/website/latest/admin/serverless/kourier_networking/"}},
}
