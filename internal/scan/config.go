package scan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
	psaapi "k8s.io/pod-security-admission/api"
)

// DefaultPSSVersion is the Pod Security Standards version checked when the
// config does not name one. It is pinned, not "latest", so that upgrading
// the k8s.io/pod-security-admission module never changes verdicts silently.
const DefaultPSSVersion = "v1.37"

// Config is the scan configuration, decoded strictly from YAML
// (`warden scan --config FILE`). Unknown keys are errors.
type Config struct {
	// PSS selects the Pod Security Standards level and version.
	PSS PSSConfig `yaml:"pss"`
	// Enable turns on opt-in rules by id (e.g. K8S041 CPU limits).
	Enable []string `yaml:"enable"`
	// Disable turns rules off by id (Go, built-in Rego and PSS-* ids).
	Disable []string `yaml:"disable"`
	// AllRules enables every opt-in rule; the strictest setting.
	AllRules bool `yaml:"allRules"`
	// Suppressions silence specific findings. Each needs a reason. They
	// take precedence over annotations.
	Suppressions []Suppression `yaml:"suppressions"`
	// Annotations controls suppression by object annotation.
	Annotations AnnotationConfig `yaml:"annotations"`
	// Strict disables annotation-based suppression entirely, because anyone
	// who can deploy can write an annotation. Default false.
	Strict bool `yaml:"strict"`
	// RulesDir is a directory of user Rego rules (packages
	// warden.kubernetes.* and warden.dockerfile.*). Default none.
	RulesDir string `yaml:"rulesDir"`
	// PodSpecPaths teaches the scanner where further CRDs keep their pod
	// templates; they are added to the built-in list.
	PodSpecPaths []PodSpecPath `yaml:"podSpecPaths"`
	// KnownKinds lists extra "group/Kind" (or "Kind" for the core group)
	// that are accepted without an "unknown kind" error.
	KnownKinds []string `yaml:"knownKinds"`
	// GPUInfraNamespaces may mount GPU device paths and run privileged GPU
	// pods. Default: gpu-operator, nvidia-device-plugin, nvidia-gpu-operator.
	GPUInfraNamespaces []string `yaml:"gpuInfraNamespaces"`
	// Helm holds rendering options for charts.
	Helm HelmConfig `yaml:"helm"`
}

// PSSConfig selects the Pod Security Standards profile.
type PSSConfig struct {
	// Level is "baseline", "restricted" (default) or "privileged" (off).
	Level string `yaml:"level"`
	// Version is "v1.N"; default DefaultPSSVersion.
	Version string `yaml:"version"`
}

// HelmConfig holds chart rendering options (the CLI's --values/--set).
type HelmConfig struct {
	// ValuesFiles are merged in order, later files winning.
	ValuesFiles []string `yaml:"valuesFiles"`
	// Set are "a.b=c" assignments applied after the values files.
	Set []string `yaml:"set"`
	// ReleaseName defaults to "warden-scan"; Namespace to "default".
	ReleaseName string `yaml:"releaseName"`
	Namespace   string `yaml:"namespace"`
}

// AnnotationConfig governs the warden.dev/ignore annotation.
type AnnotationConfig struct {
	// Disabled turns annotation suppression off (same as Strict).
	Disabled bool `yaml:"disabled"`
	// Protected lists rule ids (or prefixes ending in "*") that an
	// annotation can never suppress; only the config file can.
	Protected []string `yaml:"protected"`
}

// Suppression silences findings that match every field set. Rule and
// Reason are mandatory.
type Suppression struct {
	// Rule is a rule id or a prefix ending in "*" ("PSS-*").
	Rule string `yaml:"rule"`
	// Kind, Namespace and Name narrow the match; Name may be a glob.
	Kind      string `yaml:"kind"`
	Namespace string `yaml:"namespace"`
	Name      string `yaml:"name"`
	// File is a glob on the finding's file (path.Match syntax).
	File string `yaml:"file"`
	// Reason is shown with every suppressed finding. Mandatory.
	Reason string `yaml:"reason"`
}

// PodSpecPath says where a kind keeps pod templates or pod specs. Paths are
// dot-separated field names; "*" stands for every element of a list or
// every value of a map.
type PodSpecPath struct {
	// Group is the API group without version ("ray.io"; "" for core).
	Group string `yaml:"group"`
	Kind  string `yaml:"kind"`
	// Templates point at PodTemplateSpecs (metadata + spec).
	Templates []string `yaml:"templates"`
	// Specs point at PodSpecs (containers, volumes, …) directly.
	Specs []string `yaml:"specs"`
}

// LoadConfig reads and strictly decodes a config file. Relative paths in it
// (rulesDir, helm.valuesFiles) are resolved against the file's directory.
func LoadConfig(file string) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("scan: read config: %w", err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("scan: config %s: %w", file, err)
	}
	dir := pathDir(file)
	if cfg.RulesDir != "" && !isAbs(cfg.RulesDir) {
		cfg.RulesDir = joinPath(dir, cfg.RulesDir)
	}
	for i, v := range cfg.Helm.ValuesFiles {
		if !isAbs(v) {
			cfg.Helm.ValuesFiles[i] = joinPath(dir, v)
		}
	}
	return cfg, nil
}

// ParseConfig strictly decodes YAML config (unknown keys are errors with
// their line) and validates it.
func ParseConfig(b []byte) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.PSS.Level != "" {
		if _, err := psaapi.ParseLevel(c.PSS.Level); err != nil {
			errs = append(errs, fmt.Errorf("pss.level: %w", err))
		}
	}
	if c.PSS.Version != "" {
		if _, err := psaapi.ParseVersion(c.PSS.Version); err != nil {
			errs = append(errs, fmt.Errorf("pss.version: %w", err))
		}
	}
	for i, s := range c.Suppressions {
		if strings.TrimSpace(s.Rule) == "" {
			errs = append(errs, fmt.Errorf("suppressions[%d]: rule is required", i))
		}
		if strings.TrimSpace(s.Reason) == "" {
			errs = append(errs, fmt.Errorf("suppressions[%d] (%s): reason is required", i, s.Rule))
		}
		for _, g := range []string{s.Name, s.File} {
			if _, err := path.Match(g, ""); err != nil {
				errs = append(errs, fmt.Errorf("suppressions[%d]: bad glob %q: %w", i, g, err))
			}
		}
	}
	for i, p := range c.PodSpecPaths {
		if p.Kind == "" {
			errs = append(errs, fmt.Errorf("podSpecPaths[%d]: kind is required", i))
		}
		if len(p.Templates)+len(p.Specs) == 0 {
			errs = append(errs, fmt.Errorf("podSpecPaths[%d] (%s): templates or specs required", i, p.Kind))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) pssLevelVersion() (psaapi.LevelVersion, error) {
	lvl := c.PSS.Level
	if lvl == "" {
		lvl = string(psaapi.LevelRestricted)
	}
	ver := c.PSS.Version
	if ver == "" {
		ver = DefaultPSSVersion
	}
	l, err := psaapi.ParseLevel(lvl)
	if err != nil {
		return psaapi.LevelVersion{}, err
	}
	v, err := psaapi.ParseVersion(ver)
	if err != nil {
		return psaapi.LevelVersion{}, err
	}
	return psaapi.LevelVersion{Level: l, Version: v}, nil
}

func (c *Config) gpuInfra(ns string) bool {
	list := c.GPUInfraNamespaces
	if list == nil {
		list = []string{"gpu-operator", "nvidia-device-plugin", "nvidia-gpu-operator"}
	}
	for _, n := range list {
		if n == ns {
			return true
		}
	}
	return false
}

func pathDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}

func isAbs(p string) bool { return strings.HasPrefix(p, "/") }

func joinPath(a, b string) string { return path.Clean(a + "/" + b) }

// matchRule matches a rule id against an id or a "prefix*" pattern.
func matchRule(pattern, id string) bool {
	if strings.HasSuffix(pattern, "*") {
		return strings.HasPrefix(id, strings.TrimSuffix(pattern, "*"))
	}
	return pattern == id
}
