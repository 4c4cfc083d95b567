package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/identity/devca"
)

// newCACmd is "warden ca": a development CA for one machine (quickstart,
// local agents). Production identities come from SPIRE (docs/spire.md).
func newCACmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Development SPIFFE CA for one machine: mint X.509- and JWT-SVIDs",
		Long: `A tiny SPIFFE CA for trying Warden without SPIRE. Keys are plain files,
there is no attestation and no revocation: use it on one machine only.
For anything shared, register workloads in SPIRE (docs/spire.md).`,
	}
	cmd.AddCommand(newCAInitCmd(e), newCAIssueCmd(e))
	return cmd
}

func newCAInitCmd(e *env) *cobra.Command {
	var dir, td string
	cmd := &cobra.Command{
		Use:   "init --dir DIR --trust-domain TD",
		Short: "Create a CA (ECDSA P-256) for a trust domain in DIR",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" || td == "" {
				return usageError{errors.New("ca init: --dir and --trust-domain are required")}
			}
			trust, err := spiffeid.TrustDomainFromString(td)
			if err != nil {
				return usageError{fmt.Errorf("ca init: --trust-domain %q: %w", td, err)}
			}
			ca, err := devca.Init(dir, trust)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Created a dev CA for trust domain %s in %s (one machine only; use SPIRE beyond that)\n", ca.TrustDomain().Name(), dir)
			fmt.Fprintf(e.stdout, "  %-16s CA certificate (trust bundle), SHA-256 %s\n", devca.CACertFile, devca.Fingerprint(ca.Certificate()))
			fmt.Fprintf(e.stdout, "  %-16s CA key (0600)\n", devca.CAKeyFile)
			fmt.Fprintf(e.stdout, "  %-16s JWT-SVID signing key (0600)\n", devca.JWTKeyFile)
			fmt.Fprintf(e.stdout, "  %-16s JWT bundle for identity.jwt_bundles\n", devca.JWTBundleFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory for the CA files (created 0700)")
	cmd.Flags().StringVar(&td, "trust-domain", "", "trust domain, e.g. warden.test")
	return cmd
}

func newCAIssueCmd(e *env) *cobra.Command {
	var (
		dir, id, out string
		ttl          time.Duration
		dns          []string
		withJWT      bool
		audiences    []string
	)
	cmd := &cobra.Command{
		Use:   "issue --dir DIR --spiffe-id ID --out DIR [--ttl D] [--dns NAME] [--jwt --audience A]",
		Short: "Mint an X.509-SVID (spiffe-helper layout) and optionally a JWT-SVID",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" || id == "" || out == "" {
				return usageError{errors.New("ca issue: --dir, --spiffe-id and --out are required")}
			}
			sid, err := spiffeid.FromString(id)
			if err != nil {
				return usageError{fmt.Errorf("ca issue: --spiffe-id %q: %w", id, err)}
			}
			if ttl <= 0 {
				return usageError{fmt.Errorf("ca issue: --ttl must be positive")}
			}
			if withJWT && len(audiences) == 0 {
				return usageError{errors.New("ca issue: --jwt needs at least one --audience")}
			}
			if !withJWT && len(audiences) > 0 {
				return usageError{errors.New("ca issue: --audience only makes sense with --jwt")}
			}
			ca, err := devca.Load(dir)
			if err != nil {
				return err
			}
			if !sid.MemberOf(ca.TrustDomain()) {
				return fmt.Errorf("ca issue: %s is not in this CA's trust domain %s", sid, ca.TrustDomain().Name())
			}
			svid, err := ca.IssueX509(sid, devca.X509Options{TTL: ttl, DNSNames: dns})
			if err != nil {
				return err
			}
			if err := devca.WriteSVID(out, svid, ca.X509Bundle()); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Issued %s, valid until %s\n", sid, svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339))
			fmt.Fprintf(e.stdout, "  %s\n  %s (0600)\n  %s\n",
				filepath.Join(out, devca.SVIDFile), filepath.Join(out, devca.SVIDKeyFile), filepath.Join(out, devca.SVIDBundle))
			if withJWT {
				tok, err := ca.IssueJWT(sid, audiences, devca.JWTOptions{TTL: ttl})
				if err != nil {
					return err
				}
				path := filepath.Join(out, devca.JWTSVIDFile)
				if err := devca.WriteFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "  %s (0600): JWT-SVID for audience %v; verify with %s\n",
					path, audiences, filepath.Join(dir, devca.JWTBundleFile))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "CA directory (from 'warden ca init')")
	cmd.Flags().StringVar(&id, "spiffe-id", "", "SPIFFE ID to issue, e.g. spiffe://warden.test/agent/demo")
	cmd.Flags().StringVar(&out, "out", "", "output directory for svid.pem, svid_key.pem, svid_bundle.pem")
	cmd.Flags().DurationVar(&ttl, "ttl", devca.DefaultTTL, "lifetime of the SVIDs")
	cmd.Flags().StringSliceVar(&dns, "dns", nil, "DNS SAN to add (repeatable), for SVIDs that serve TLS")
	cmd.Flags().BoolVar(&withJWT, "jwt", false, "also mint a JWT-SVID into jwt_svid.token")
	cmd.Flags().StringSliceVar(&audiences, "audience", nil, "JWT-SVID audience (repeatable; required with --jwt)")
	return cmd
}
