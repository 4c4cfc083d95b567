package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// workloadSource takes Warden's SVID and bundles from the SPIFFE Workload
// API (a SPIRE agent): X.509 via workloadapi.X509Source, JWT bundles via a
// FetchJWTBundles stream on the same connection. Bundle files configured
// for a trust domain (federation bundle_file, jwt_bundles) take precedence
// over what the agent sends for it; bundles for trust domains that were not
// configured are ignored.
type workloadSource struct {
	plan   *plan
	log    *slog.Logger
	client *workloadapi.Client
	x509   *workloadapi.X509Source
	files  *fileSource // nil when no bundle files are configured

	jwt     atomic.Pointer[jwtbundle.Set]
	jwtSeen chan struct{}
	once    sync.Once

	closed atomic.Bool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ Source = (*workloadSource)(nil)

// jwtWaitMax bounds how long NewSource waits for the first JWT bundles after
// the X.509-SVID arrived. An agent that never sends them leaves JWT-SVID
// verification failing closed, but must not keep an mTLS-only Warden from
// starting.
const jwtWaitMax = 2 * time.Second

func newWorkloadSource(ctx context.Context, p *plan, log *slog.Logger) (_ *workloadSource, err error) {
	if err := workloadapi.ValidateAddress(p.socket); err != nil {
		return nil, fmt.Errorf("identity: workload API socket %q: %w", p.socket, err)
	}
	s := &workloadSource{plan: p, log: log, jwtSeen: make(chan struct{})}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if hasBundleFiles(p) {
		if s.files, err = startFileSource(ctx, p, log, false); err != nil {
			return nil, err
		}
	}
	s.client, err = workloadapi.New(ctx, workloadapi.WithAddr(p.socket), workloadapi.WithLogger(spiffeLogger{log}))
	if err != nil {
		return nil, fmt.Errorf("identity: workload API %s: %w", p.socket, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// Returns only when wctx is cancelled (the client retries itself).
		_ = s.client.WatchJWTBundles(wctx, jwtWatcher{s})
	}()
	s.x509, err = workloadapi.NewX509Source(ctx, workloadapi.WithClient(s.client),
		workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
			// Warden's SVID is the first one in its own trust domain; an
			// agent handing it only foreign SVIDs leaves it without one.
			for _, sv := range svids {
				if sv.ID.MemberOf(p.td) {
					return sv
				}
			}
			return nil
		}))
	if err != nil {
		return nil, fmt.Errorf("identity: workload API %s: no X.509-SVID: %w", p.socket, err)
	}
	svid, err := s.x509.GetX509SVID()
	if err != nil {
		return nil, fmt.Errorf("identity: workload API %s: no X.509-SVID in trust domain %s: %w", p.socket, p.td, err)
	}
	wait := time.NewTimer(jwtWaitMax)
	defer wait.Stop()
	select {
	case <-s.jwtSeen:
	case <-wait.C:
		log.Warn("identity: no JWT bundles from the workload API yet; JWT-SVIDs are refused until they arrive")
	case <-ctx.Done():
		log.Warn("identity: no JWT bundles from the workload API yet; JWT-SVIDs are refused until they arrive")
	}
	log.Info("identity: SVID from workload API", "spiffe_id", svid.ID.String(),
		"expires_at", svid.Certificates[0].NotAfter, "socket", p.socket)
	return s, nil
}

func hasBundleFiles(p *plan) bool {
	if len(p.jwtFiles) > 0 {
		return true
	}
	for _, path := range p.federated {
		if path != "" {
			return true
		}
	}
	return false
}

type jwtWatcher struct{ s *workloadSource }

func (w jwtWatcher) OnJWTBundlesUpdate(set *jwtbundle.Set) {
	w.s.jwt.Store(set)
	w.s.once.Do(func() { close(w.s.jwtSeen) })
}

func (w jwtWatcher) OnJWTBundlesWatchError(err error) {
	w.s.log.Warn("identity: workload API JWT bundle update rejected", "error", err)
}

// GetX509SVID returns Warden's current SVID from the agent.
func (s *workloadSource) GetX509SVID() (*x509svid.SVID, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return s.x509.GetX509SVID()
}

// GetX509BundleForTrustDomain returns the bundle for the own or a federated
// trust domain: from its configured file, else from the agent.
func (s *workloadSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if !s.plan.accepts(td) {
		return nil, notAccepted(td)
	}
	if path := s.plan.federated[td]; path != "" && s.files != nil {
		return s.files.GetX509BundleForTrustDomain(td)
	}
	return s.x509.GetX509BundleForTrustDomain(td)
}

// GetJWTBundleForTrustDomain returns the JWT bundle for the own or a
// federated trust domain: from its configured file, else from the agent.
func (s *workloadSource) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if !s.plan.accepts(td) {
		return nil, notAccepted(td)
	}
	if _, ok := s.plan.jwtFiles[td]; ok && s.files != nil {
		return s.files.GetJWTBundleForTrustDomain(td)
	}
	set := s.jwt.Load()
	if set == nil {
		return nil, fmt.Errorf("identity: no JWT bundles received from the workload API yet")
	}
	return set.GetJWTBundleForTrustDomain(td)
}

// Close drops the Workload API connection and stops watching files.
func (s *workloadSource) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	if s.x509 != nil {
		errs = append(errs, s.x509.Close())
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.client != nil {
		errs = append(errs, s.client.Close())
	}
	if s.files != nil {
		errs = append(errs, s.files.Close())
	}
	return errors.Join(errs...)
}

// spiffeLogger adapts slog to go-spiffe's logger. The Workload API client
// logs watch failures at error level while it retries; that is a warning
// for Warden, which keeps serving with the SVID it has.
type spiffeLogger struct{ log *slog.Logger }

func (l spiffeLogger) Debugf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l spiffeLogger) Infof(format string, args ...any)  { l.log.Info(fmt.Sprintf(format, args...)) }
func (l spiffeLogger) Warnf(format string, args ...any)  { l.log.Warn(fmt.Sprintf(format, args...)) }
func (l spiffeLogger) Errorf(format string, args ...any) { l.log.Warn(fmt.Sprintf(format, args...)) }
