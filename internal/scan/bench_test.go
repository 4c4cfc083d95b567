package scan

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time. On a shared machine
// wall-clock throughput says more about the neighbours than about the
// scanner, so the benchmarks also report objects per CPU-second.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// genManifests writes n objects cycling through a realistic mix: pod
// controllers (half of them), Services, ConfigMaps, NetworkPolicies and
// RBAC objects, spread over 20 namespaces.
func genManifests(n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("team-%d", i%20)
		switch i % 8 {
		case 0, 1, 2:
			fmt.Fprintf(&b, `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%[1]d
  namespace: %[2]s
  labels: {app: app-%[1]d}
spec:
  replicas: 2
  selector:
    matchLabels: {app: app-%[1]d}
  template:
    metadata:
      labels: {app: app-%[1]d}
    spec:
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: app
        image: registry.example/team/app:1.%[1]d
        args: ["--port", "8080"]
        ports: [{containerPort: 8080}]
        env:
        - {name: LOG_LEVEL, value: info}
        - name: DB_PASSWORD
          valueFrom: {secretKeyRef: {name: db, key: password}}
        resources:
          requests: {cpu: 100m, memory: 128Mi}
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
---
`, i, ns)
		case 3:
			fmt.Fprintf(&b, `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: vllm-%[1]d, namespace: %[2]s}
spec:
  template:
    metadata:
      labels: {app: vllm-%[1]d}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.11.0
        args: ["--model", "/models/m", "--host", "0.0.0.0"]
        resources:
          limits: {nvidia.com/gpu: 1}
        volumeMounts: [{name: models, mountPath: /models, readOnly: true}]
---
`, i, ns)
		case 4:
			fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata: {name: svc-%d, namespace: %s}\nspec:\n  selector: {app: app-%d}\n  ports: [{port: 80, targetPort: 8080}]\n---\n", i, ns, i-4)
		case 5:
			fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d, namespace: %s}\ndata:\n  log_level: info\n  app.properties: |\n    a=b\n    c=d\n---\n", i, ns)
		case 6:
			fmt.Fprintf(&b, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np-%d, namespace: %s}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n---\n", i, ns)
		case 7:
			fmt.Fprintf(&b, "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r-%d, namespace: %s}\nrules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [get, list]\n---\n", i, ns)
		}
	}
	return b.Bytes()
}

// BenchmarkScanManifests measures raw-manifest throughput (objects/s) on
// a 1,000-object stream. Run with -cpu 1 for the one-core figure.
func BenchmarkScanManifests(b *testing.B) {
	const n = 1000
	data := genManifests(n)
	s, err := New(context.Background(), Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		res := s.ScanReader(context.Background(), bytes.NewReader(data), "bench.yaml")
		if res.Objects != n || len(res.Errors) > 0 {
			b.Fatalf("%d objects, errors %v", res.Objects, res.Errors)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "objects/s")
	b.ReportMetric(float64(n*b.N)/(cpuTime()-cpu0).Seconds(), "objects/cpu-s")
}

// BenchmarkScan10k scans 10,000 objects in one stream and reports the
// live heap after the scan (the result included): memory grows with
// findings and the compact cross-object index, not with the input.
func BenchmarkScan10k(b *testing.B) {
	const n = 10000
	data := genManifests(n)
	s, err := New(context.Background(), Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var heap uint64
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		res := s.ScanReader(context.Background(), bytes.NewReader(data), "bench.yaml")
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = max(heap, ms.HeapInuse)
		runtime.KeepAlive(res)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "objects/s")
	b.ReportMetric(float64(n*b.N)/(cpuTime()-cpu0).Seconds(), "objects/cpu-s")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(len(data))/(1<<20), "input-MiB")
}

// BenchmarkEvaluateObject is the per-object cost the admission webhook pays.
func BenchmarkEvaluateObject(b *testing.B) {
	s, err := New(context.Background(), Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	var obj map[string]any
	decodeStream(bytes.NewReader(genManifests(1)), "x", "", func(o *Object) { obj = o.Raw }, func(e *InputError) { b.Fatal(e) })
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.EvaluateObject(context.Background(), obj, "x")
	}
}
