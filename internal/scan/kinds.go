package scan

// builtinPodSpecPaths lists where the standard controllers and the AI CRDs
// keep their pods. Config.PodSpecPaths extends it.
var builtinPodSpecPaths = []PodSpecPath{
	{Group: "", Kind: "Pod", Specs: []string{"spec"}},
	{Group: "", Kind: "PodTemplate", Templates: []string{"template"}},
	{Group: "", Kind: "ReplicationController", Templates: []string{"spec.template"}},
	{Group: "apps", Kind: "Deployment", Templates: []string{"spec.template"}},
	{Group: "apps", Kind: "StatefulSet", Templates: []string{"spec.template"}},
	{Group: "apps", Kind: "DaemonSet", Templates: []string{"spec.template"}},
	{Group: "apps", Kind: "ReplicaSet", Templates: []string{"spec.template"}},
	{Group: "batch", Kind: "Job", Templates: []string{"spec.template"}},
	{Group: "batch", Kind: "CronJob", Templates: []string{"spec.jobTemplate.spec.template"}},
	{Group: "jobset.x-k8s.io", Kind: "JobSet", Templates: []string{"spec.replicatedJobs.*.template.spec.template"}},
	// KubeRay.
	{Group: "ray.io", Kind: "RayCluster", Templates: []string{"spec.headGroupSpec.template", "spec.workerGroupSpecs.*.template"}},
	{Group: "ray.io", Kind: "RayService", Templates: []string{"spec.rayClusterConfig.headGroupSpec.template", "spec.rayClusterConfig.workerGroupSpecs.*.template"}},
	{Group: "ray.io", Kind: "RayJob", Templates: []string{"spec.rayClusterSpec.headGroupSpec.template", "spec.rayClusterSpec.workerGroupSpecs.*.template", "spec.submitterPodTemplate"}},
	// LeaderWorkerSet.
	{Group: "leaderworkerset.x-k8s.io", Kind: "LeaderWorkerSet", Templates: []string{"spec.leaderWorkerTemplate.leaderTemplate", "spec.leaderWorkerTemplate.workerTemplate"}},
	// Kubeflow.
	{Group: "kubeflow.org", Kind: "Notebook", Templates: []string{"spec.template"}},
	{Group: "kubeflow.org", Kind: "PyTorchJob", Templates: []string{"spec.pytorchReplicaSpecs.*.template"}},
	{Group: "kubeflow.org", Kind: "TFJob", Templates: []string{"spec.tfReplicaSpecs.*.template"}},
	{Group: "kubeflow.org", Kind: "MPIJob", Templates: []string{"spec.mpiReplicaSpecs.*.template"}},
	// KServe: the component specs inline a PodSpec.
	{Group: "serving.kserve.io", Kind: "InferenceService", Specs: []string{"spec.predictor", "spec.transformer", "spec.explainer"}},
	{Group: "serving.kserve.io", Kind: "ServingRuntime", Specs: []string{"spec"}},
	{Group: "serving.kserve.io", Kind: "ClusterServingRuntime", Specs: []string{"spec"}},
}

// builtinKnownKinds are kinds that are checked by their own rules or known
// to carry no pods. Any other kind is reported as unknown, so nothing is
// skipped silently; Config.KnownKinds extends the list.
var builtinKnownKinds = []string{
	"Service", "ConfigMap", "Secret", "ServiceAccount", "Namespace", "PersistentVolumeClaim",
	"PersistentVolume", "Endpoints", "LimitRange", "ResourceQuota", "Event", "Node", "Binding",
	"apps/ControllerRevision",
	"networking.k8s.io/NetworkPolicy", "networking.k8s.io/Ingress", "networking.k8s.io/IngressClass",
	"rbac.authorization.k8s.io/Role", "rbac.authorization.k8s.io/ClusterRole",
	"rbac.authorization.k8s.io/RoleBinding", "rbac.authorization.k8s.io/ClusterRoleBinding",
	"policy/PodDisruptionBudget", "autoscaling/HorizontalPodAutoscaler",
	"storage.k8s.io/StorageClass", "storage.k8s.io/CSIDriver", "storage.k8s.io/VolumeAttachment",
	"apiextensions.k8s.io/CustomResourceDefinition",
	"admissionregistration.k8s.io/ValidatingWebhookConfiguration",
	"admissionregistration.k8s.io/MutatingWebhookConfiguration",
	"admissionregistration.k8s.io/ValidatingAdmissionPolicy",
	"admissionregistration.k8s.io/ValidatingAdmissionPolicyBinding",
	"scheduling.k8s.io/PriorityClass", "coordination.k8s.io/Lease", "discovery.k8s.io/EndpointSlice",
	"node.k8s.io/RuntimeClass", "certificates.k8s.io/CertificateSigningRequest",
	"resource.k8s.io/ResourceClaim", "resource.k8s.io/ResourceClaimTemplate", "resource.k8s.io/DeviceClass",
	"gateway.networking.k8s.io/Gateway", "gateway.networking.k8s.io/GatewayClass",
	"gateway.networking.k8s.io/HTTPRoute", "gateway.networking.k8s.io/GRPCRoute",
	"gateway.networking.k8s.io/TLSRoute", "gateway.networking.k8s.io/ReferenceGrant",
	"monitoring.coreos.com/ServiceMonitor", "monitoring.coreos.com/PodMonitor", "monitoring.coreos.com/PrometheusRule",
	"networking.istio.io/Gateway", "networking.istio.io/VirtualService", "networking.istio.io/DestinationRule",
	"security.istio.io/AuthorizationPolicy", "security.istio.io/PeerAuthentication", "security.istio.io/RequestAuthentication",
	"cert-manager.io/Certificate", "cert-manager.io/Issuer", "cert-manager.io/ClusterIssuer",
	"serving.kserve.io/InferenceGraph", "serving.kserve.io/TrainedModel", "serving.kserve.io/LLMInferenceService",
}
