package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardenhq/warden/internal/scan"
	"github.com/wardenhq/warden/internal/scan/report"
)

func init() { extraCommands = append(extraCommands, newScanCmd) }

// Exit codes of `warden scan`, documented in docs/scan.md.
const (
	scanExitFindings    = 1 // findings at or above --fail-on
	scanExitInputErrors = 3 // part of the input could not be scanned
)

func newScanCmd(e *env) *cobra.Command {
	var (
		cfgPath, rulesDir, format, outFile, failOn string
		pssLevel, pssVersion, release, namespace   string
		values, sets, enable, disable              []string
		strict, allRules                           bool
	)
	c := &cobra.Command{
		Use:   "scan PATH... | -",
		Short: "Check Kubernetes manifests, Helm charts, Kustomize dirs and Dockerfiles for security misconfigurations",
		Long: `Scan Kubernetes YAML/JSON, Helm charts (rendered in-process), Kustomize directories
(built in-process) and Dockerfiles. Pod Security Standards come from the official
k8s.io/pod-security-admission library; AI workloads (inference servers, notebooks,
vector databases, MCP servers, GPU pods) get their own rules.

Exit status: 0 clean, 1 findings at or above --fail-on, 2 usage error,
3 some input could not be scanned (reported with file and line).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("%s: give at least one PATH, or - for standard input", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := &scan.Config{}
			if cfgPath != "" {
				var err error
				if cfg, err = scan.LoadConfig(cfgPath); err != nil {
					return usageError{err}
				}
			}
			if rulesDir != "" {
				cfg.RulesDir = rulesDir
			}
			if pssLevel != "" {
				cfg.PSS.Level = pssLevel
			}
			if pssVersion != "" {
				cfg.PSS.Version = pssVersion
			}
			cfg.Strict = cfg.Strict || strict
			cfg.AllRules = cfg.AllRules || allRules
			cfg.Enable = append(cfg.Enable, enable...)
			cfg.Disable = append(cfg.Disable, disable...)
			cfg.Helm.ValuesFiles = append(cfg.Helm.ValuesFiles, values...)
			cfg.Helm.Set = append(cfg.Helm.Set, sets...)
			if release != "" {
				cfg.Helm.ReleaseName = release
			}
			if namespace != "" {
				cfg.Helm.Namespace = namespace
			}
			threshold := scan.SeverityCritical + 1 // "none"
			if failOn != "none" {
				var err error
				if threshold, err = scan.ParseSeverity(failOn); err != nil {
					return usageError{fmt.Errorf("--fail-on: %w", err)}
				}
			}
			if !validFormat(format) {
				return usageError{fmt.Errorf("--format %q: want one of %s", format, strings.Join(report.Formats, ", "))}
			}
			s, err := scan.New(cmd.Context(), *cfg, nil)
			if err != nil {
				return usageError{err}
			}
			opt := scan.Options{Stdin: e.stdin}
			done := func() {}
			if isTerminal(e.stderr) {
				opt.Progress, done = progress(e.stderr)
			}
			res := s.Scan(cmd.Context(), args, opt)
			done()
			out := e.stdout
			if outFile != "" {
				f, err := os.Create(outFile)
				if err != nil {
					return fmt.Errorf("scan: output: %w", err)
				}
				defer f.Close()
				out = f
			}
			if err := report.Write(out, format, res, Version); err != nil {
				return fmt.Errorf("scan: write report: %w", err)
			}
			if format != "table" {
				// Machine output on stdout; errors still reach a human.
				for _, ie := range res.Errors {
					fmt.Fprintf(e.stderr, "error: %v\n", ie)
				}
			}
			switch {
			case len(res.Errors) > 0:
				return &ExitError{Code: scanExitInputErrors, Err: fmt.Errorf("%d input error(s): part of the input was not scanned", len(res.Errors))}
			case res.Failed(threshold):
				return &ExitError{Code: scanExitFindings}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&cfgPath, "config", "c", "", "scan config file (YAML, strictly decoded): suppressions, rules, PSS level")
	f.StringVar(&rulesDir, "rules", "", "directory of additional Rego rules (packages warden.kubernetes.* / warden.dockerfile.*)")
	f.StringVarP(&format, "format", "o", "table", "output format: "+strings.Join(report.Formats, ", "))
	f.StringVar(&outFile, "output", "", "write the report to FILE instead of stdout")
	f.StringVar(&failOn, "fail-on", "low", "exit 1 when an unsuppressed finding has at least this severity (info, low, medium, high, critical, none)")
	f.StringVar(&pssLevel, "pss-level", "", "Pod Security Standards level: baseline, restricted (default) or privileged (off)")
	f.StringVar(&pssVersion, "pss-version", "", "Pod Security Standards version v1.N (default "+scan.DefaultPSSVersion+")")
	f.StringArrayVarP(&values, "values", "f", nil, "Helm values file (repeatable, later wins)")
	f.StringArrayVar(&sets, "set", nil, "Helm value a.b=c (repeatable)")
	f.StringVar(&release, "release-name", "", "Helm release name (default warden-scan)")
	f.StringVar(&namespace, "namespace", "", "Helm release namespace (default default)")
	f.StringSliceVar(&enable, "enable", nil, "enable opt-in rules by id (e.g. K8S041)")
	f.StringSliceVar(&disable, "disable", nil, "disable rules by id")
	f.BoolVar(&strict, "strict", false, "ignore warden.dev/ignore annotations (anyone who can deploy can write one)")
	f.BoolVar(&allRules, "all-rules", false, "enable every opt-in rule")
	return c
}

func validFormat(f string) bool {
	for _, x := range report.Formats {
		if f == x {
			return true
		}
	}
	return false
}

// isTerminal reports whether w is a character device (a terminal), where a
// progress line helps and cannot corrupt machine output.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress returns a callback that redraws one status line at most a few
// times a second, and a function that clears it.
func progress(w io.Writer) (func(int), func()) {
	start := time.Now()
	var last time.Time
	drawn := false
	return func(n int) {
			now := time.Now()
			if now.Sub(last) < 200*time.Millisecond {
				return
			}
			last, drawn = now, true
			fmt.Fprintf(w, "\rwarden scan: %d objects (%.0f/s)…", n, float64(n)/now.Sub(start).Seconds())
		}, func() {
			if drawn {
				fmt.Fprint(w, "\r\033[K")
			}
		}
}
