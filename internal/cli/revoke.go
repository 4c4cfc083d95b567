package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/wardenhq/warden/internal/config"
)

// adminFlags locate the admin API and the caller's own SVID.
type adminFlags struct {
	cfgPath  string
	addr     string
	svidDir  string
	serverID string
}

func (f *adminFlags) register(c *cobra.Command) {
	c.Flags().StringVarP(&f.cfgPath, "config", "c", "", "Warden config (to find the admin address)")
	c.Flags().StringVar(&f.addr, "admin", os.Getenv("WARDEN_ADMIN_ADDR"), "admin address host:port (default $WARDEN_ADMIN_ADDR or the config's admin.address)")
	c.Flags().StringVar(&f.svidDir, "svid-dir", os.Getenv("WARDEN_SVID_DIR"), "directory with this caller's admin SVID: svid.pem, svid_key.pem, svid_bundle.pem (default $WARDEN_SVID_DIR)")
	c.Flags().StringVar(&f.serverID, "server-id", "", "expected SPIFFE ID of Warden (default: any ID in the caller's trust domain)")
}

// client returns an mTLS client for the admin API and its base URL.
func (f *adminFlags) client() (*http.Client, string, error) {
	addr := f.addr
	if addr == "" && f.cfgPath != "" {
		cfg, err := config.Load(f.cfgPath)
		if err != nil {
			return nil, "", err
		}
		if cfg.Admin == nil {
			return nil, "", fmt.Errorf("%s has no admin section", f.cfgPath)
		}
		addr = cfg.Admin.Address
	}
	if addr == "" {
		return nil, "", fmt.Errorf("no admin address: pass --admin, -c or set WARDEN_ADMIN_ADDR")
	}
	if f.svidDir == "" {
		return nil, "", fmt.Errorf("no admin SVID: pass --svid-dir or set WARDEN_SVID_DIR")
	}
	svid, err := x509svid.Load(filepath.Join(f.svidDir, "svid.pem"), filepath.Join(f.svidDir, "svid_key.pem"))
	if err != nil {
		return nil, "", fmt.Errorf("load admin SVID from %s: %w", f.svidDir, err)
	}
	td := svid.ID.TrustDomain()
	bundle, err := x509bundle.Load(td, filepath.Join(f.svidDir, "svid_bundle.pem"))
	if err != nil {
		return nil, "", fmt.Errorf("load trust bundle from %s: %w", f.svidDir, err)
	}
	authz := tlsconfig.AuthorizeMemberOf(td)
	if f.serverID != "" {
		id, err := spiffeid.FromString(f.serverID)
		if err != nil {
			return nil, "", fmt.Errorf("--server-id: %w", err)
		}
		authz = tlsconfig.AuthorizeID(id)
	}
	tc := tlsconfig.MTLSClientConfig(svid, bundle, authz)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}, "https://" + addr, nil
}

func adminCall(ctx context.Context, f *adminFlags, method, path string, body any, out io.Writer) error {
	hc, base, err := f.client()
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin API: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	_, err = out.Write(b)
	return err
}

func newRevokeCmd(e *env) *cobra.Command {
	var f adminFlags
	var reason string
	c := &cobra.Command{
		Use:   "revoke SPIFFE_ID [--reason R]",
		Short: "Revoke an identity now: new requests fail and its open connections and streams are closed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := spiffeid.FromString(args[0]); err != nil {
				return usageError{fmt.Errorf("revoke: %q is not a SPIFFE ID: %w", args[0], err)}
			}
			return adminCall(cmd.Context(), &f, http.MethodPost, "/v1/revocations",
				map[string]string{"spiffe_id": args[0], "reason": reason}, e.stdout)
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "reason, recorded in the audit log")
	f.register(c)
	return c
}

func newUnrevokeCmd(e *env) *cobra.Command {
	var f adminFlags
	c := &cobra.Command{
		Use:   "unrevoke SPIFFE_ID",
		Short: "Lift a revocation",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := spiffeid.FromString(args[0]); err != nil {
				return usageError{fmt.Errorf("unrevoke: %q is not a SPIFFE ID: %w", args[0], err)}
			}
			return adminCall(cmd.Context(), &f, http.MethodDelete, "/v1/revocations?spiffe_id="+url.QueryEscape(args[0]), nil, e.stdout)
		},
	}
	f.register(c)
	return c
}
