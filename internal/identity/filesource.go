package identity

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// fileSource reads Warden's SVID (spiffe-helper layout), federated X.509
// bundles and JWT bundles from files and re-reads them when they change:
// fsnotify on the directories (which also sees Kubernetes' symlink swaps)
// plus a poll, because inotify misses changes on some network and overlay
// file systems. A set of files that does not parse or does not fit
// together (a half-written rotation) is ignored: the previous values stay
// in force and the read is retried soon.
type fileSource struct {
	plan *plan
	log  *slog.Logger
	// ownFiles is false when the SVID comes from elsewhere (the Workload
	// API) and only bundle files are watched.
	ownFiles bool

	state  atomic.Pointer[fileState]
	closed atomic.Bool
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// failed remembers the digest of input that failed, per file group, so
	// a broken file is logged once, not on every poll.
	failed map[string][sha256.Size]byte
}

var _ Source = (*fileSource)(nil)

// fileState is one consistent set of loaded values. It is replaced whole;
// values that did not change keep their pointers (TLS configs cache on them).
type fileState struct {
	svid      *x509svid.SVID
	ownBundle *x509bundle.Bundle
	federated map[spiffeid.TrustDomain]*x509bundle.Bundle
	jwt       map[spiffeid.TrustDomain]*jwtbundle.Bundle
	// digests of the inputs each value was built from, by group key.
	digests map[string][sha256.Size]byte
}

const (
	debounce   = 20 * time.Millisecond
	retryFirst = 50 * time.Millisecond
)

func newFileSource(ctx context.Context, p *plan, log *slog.Logger) (*fileSource, error) {
	return startFileSource(ctx, p, log, true)
}

func startFileSource(ctx context.Context, p *plan, log *slog.Logger, ownFiles bool) (*fileSource, error) {
	s := &fileSource{plan: p, log: log, ownFiles: ownFiles, failed: map[string][sha256.Size]byte{}}
	// The first complete load: files may appear late (a sidecar starting
	// alongside Warden), so retry until ctx ends.
	delay := retryFirst
	for {
		err := s.reload()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("identity: files not ready: %w (%v)", err, context.Cause(ctx))
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.watch(wctx)
	if st := s.state.Load(); st.svid != nil {
		log.Info("identity: SVID loaded from files", "spiffe_id", st.svid.ID.String(),
			"expires_at", st.svid.Certificates[0].NotAfter, "dir", filepath.Dir(p.svidPath))
	}
	return s, nil
}

// watchedDirs lists the directories holding any watched file.
func (s *fileSource) watchedDirs() []string {
	seen := map[string]bool{}
	var dirs []string
	add := func(path string) {
		if path == "" {
			return
		}
		d := filepath.Dir(path)
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	if s.ownFiles {
		add(s.plan.svidPath)
		add(s.plan.keyPath)
		add(s.plan.bundlePath)
	}
	for _, path := range s.plan.federated {
		add(path)
	}
	for _, path := range s.plan.jwtFiles {
		add(path)
	}
	return dirs
}

func (s *fileSource) watch(ctx context.Context) {
	defer s.wg.Done()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w, err := fsnotify.NewWatcher(); err != nil {
		s.log.Warn("identity: fsnotify unavailable, polling only", "error", err)
	} else {
		defer w.Close()
		for _, d := range s.watchedDirs() {
			if err := w.Add(d); err != nil {
				s.log.Warn("identity: cannot watch directory, polling it", "dir", d, "error", err)
			}
		}
		events, errs = w.Events, w.Errors
	}
	wake := time.NewTimer(s.plan.poll)
	defer wake.Stop()
	retry := retryFirst
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			wake.Reset(debounce)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			s.log.Warn("identity: fsnotify error", "error", err)
		case <-wake.C:
			if err := s.reload(); err != nil {
				// Half-written or broken: the old values stay; look again soon.
				wake.Reset(min(retry, s.plan.poll))
				retry = min(retry*2, s.plan.poll)
				continue
			}
			retry = retryFirst
			wake.Reset(s.plan.poll)
		}
	}
}

// reload reads every file and swaps in whatever changed and is valid. It
// returns an error if any group is missing or invalid (its old value, if
// any, stays in force). Only the watch goroutine (and the constructor,
// before it starts) calls it.
func (s *fileSource) reload() error {
	cur := s.state.Load()
	next := &fileState{
		federated: map[spiffeid.TrustDomain]*x509bundle.Bundle{},
		jwt:       map[spiffeid.TrustDomain]*jwtbundle.Bundle{},
		digests:   map[string][sha256.Size]byte{},
	}
	if cur != nil {
		*next = fileState{
			svid:      cur.svid,
			ownBundle: cur.ownBundle,
			federated: maps.Clone(cur.federated),
			jwt:       maps.Clone(cur.jwt),
			digests:   maps.Clone(cur.digests),
		}
	}
	changed := false
	var errs []error
	// group reads files, skips them if unchanged since the last success,
	// and otherwise calls apply; it logs a failure once per distinct input.
	group := func(key string, paths []string, apply func(data [][]byte) error) {
		data := make([][]byte, len(paths))
		h := sha256.New()
		for i, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
				return
			}
			data[i] = b
			fmt.Fprintf(h, "%d:", len(b))
			h.Write(b)
		}
		var sum [sha256.Size]byte
		h.Sum(sum[:0])
		if d, ok := next.digests[key]; ok && d == sum {
			return
		}
		if err := apply(data); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			if s.failed[key] != sum {
				s.failed[key] = sum
				s.log.Warn("identity: ignoring invalid files, keeping the previous values", "files", key, "error", err)
			}
			return
		}
		delete(s.failed, key)
		next.digests[key] = sum
		changed = true
	}
	if s.ownFiles {
		key := s.plan.svidPath
		group(key, []string{s.plan.svidPath, s.plan.keyPath, s.plan.bundlePath}, func(d [][]byte) error {
			svid, bundle, err := parseOwnFiles(s.plan.td, d[0], d[1], d[2])
			if err != nil {
				return err
			}
			if next.svid != nil {
				s.log.Info("identity: SVID rotated", "spiffe_id", svid.ID.String(), "expires_at", svid.Certificates[0].NotAfter)
			}
			next.svid, next.ownBundle = svid, bundle
			return nil
		})
	}
	for td, path := range s.plan.federated {
		if path == "" {
			continue
		}
		group(path, []string{path}, func(d [][]byte) error {
			b, err := x509bundle.Parse(td, d[0])
			if err != nil {
				return err
			}
			if b, err = ownAuthorities(td, b); err != nil {
				return err
			}
			next.federated[td] = b
			return nil
		})
	}
	for td, path := range s.plan.jwtFiles {
		group(path, []string{path}, func(d [][]byte) error {
			b, err := parseJWTBundle(td, d[0])
			if err != nil {
				return err
			}
			next.jwt[td] = b
			return nil
		})
	}
	if changed || cur == nil {
		s.state.Store(next)
	}
	return errors.Join(errs...)
}

// parseOwnFiles parses the spiffe-helper files and checks they fit
// together: the key matches the certificate, the SVID is in Warden's trust
// domain and chains to the bundle. A rotation caught half-way fails here.
func parseOwnFiles(td spiffeid.TrustDomain, certPEM, keyPEM, bundlePEM []byte) (*x509svid.SVID, *x509bundle.Bundle, error) {
	svid, err := x509svid.Parse(certPEM, keyPEM)
	if err != nil {
		return nil, nil, err
	}
	if !svid.ID.MemberOf(td) {
		return nil, nil, fmt.Errorf("SVID %s is not in trust domain %s", svid.ID, td)
	}
	bundle, err := x509bundle.Parse(td, bundlePEM)
	if err != nil {
		return nil, nil, err
	}
	if bundle, err = ownAuthorities(td, bundle); err != nil {
		return nil, nil, err
	}
	// Check the chain, not the clock: an expired SVID is still the newest
	// one we have (and is logged by the TLS layer's peers), but one that
	// does not chain to the bundle is a half-written rotation.
	leaf := svid.Certificates[0]
	mid := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
	if _, _, err := x509svid.Verify(svid.Certificates, bundle, x509svid.WithTime(mid)); err != nil {
		if _, _, errNow := x509svid.Verify(svid.Certificates, bundle); errNow != nil {
			return nil, nil, fmt.Errorf("SVID does not chain to the bundle: %w", err)
		}
	}
	return svid, bundle, nil
}

// ownAuthorities keeps the CA certificates of bundle b that belong to td:
// it drops those that name another trust domain in their URI SAN (SPIRE CAs carry spiffe://<trust domain>). spiffe-helper
// appends federated CAs to svid_bundle.pem with include_federated_domains;
// trusting them for the own domain would let a partner's CA mint Warden's
// own IDs. Federated domains are configured, each with its own bundle.
func ownAuthorities(td spiffeid.TrustDomain, b *x509bundle.Bundle) (*x509bundle.Bundle, error) {
	var keep []*x509.Certificate
	for _, c := range b.X509Authorities() {
		foreign := false
		for _, u := range c.URIs {
			if other, err := spiffeid.TrustDomainFromURI(u); err == nil && other != td {
				foreign = true
			}
		}
		if !foreign {
			keep = append(keep, c)
		}
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("bundle has no authority for trust domain %s", td)
	}
	return x509bundle.FromX509Authorities(td, keep), nil
}

// maxJWTBundleBytes bounds a JWKS file; real bundles are a few KiB.
const maxJWTBundleBytes = 1 << 20

// parseJWTBundle parses a JWT bundle: a SPIFFE bundle (JWKS whose keys say
// "use": "jwt-svid"; x509-svid entries are ignored) or a plain RFC 7517
// JWKS. An empty bundle is an error, so a misconfigured file is loud rather
// than silently refusing every token.
func parseJWTBundle(td spiffeid.TrustDomain, data []byte) (*jwtbundle.Bundle, error) {
	if len(data) > maxJWTBundleBytes {
		return nil, fmt.Errorf("JWT bundle larger than %d bytes", maxJWTBundleBytes)
	}
	if !bytes.Contains(data, []byte(`"keys"`)) {
		return nil, errors.New("JWT bundle: not a JWKS document (no \"keys\")")
	}
	if sb, err := spiffebundle.Parse(td, data); err == nil {
		if auth := sb.JWTAuthorities(); len(auth) > 0 {
			return checkJWTKeys(jwtbundle.FromJWTAuthorities(td, auth))
		}
	}
	b, err := jwtbundle.Parse(td, data)
	if err != nil {
		return nil, err
	}
	if b.Empty() {
		return nil, errors.New("JWT bundle has no keys")
	}
	return checkJWTKeys(b)
}

// checkJWTKeys admits only the key types of the algorithms jwtsvid accepts
// (RSA and ECDSA). A symmetric "oct" key in a bundle is a configuration
// mistake at best and a key-confusion attempt at worst.
func checkJWTKeys(b *jwtbundle.Bundle) (*jwtbundle.Bundle, error) {
	for kid, k := range b.JWTAuthorities() {
		switch k.(type) {
		case *ecdsa.PublicKey, *rsa.PublicKey:
		default:
			return nil, fmt.Errorf("JWT bundle key %q: unsupported key type %T", kid, k)
		}
	}
	return b, nil
}

// GetX509SVID returns Warden's current SVID.
func (s *fileSource) GetX509SVID() (*x509svid.SVID, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	st := s.state.Load()
	if st == nil || st.svid == nil {
		return nil, errors.New("identity: no SVID loaded")
	}
	return st.svid, nil
}

// GetX509BundleForTrustDomain returns the own or a federated bundle.
func (s *fileSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if !s.plan.accepts(td) {
		return nil, notAccepted(td)
	}
	st := s.state.Load()
	if td == s.plan.td && st.ownBundle != nil {
		return st.ownBundle, nil
	}
	if b, ok := st.federated[td]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("identity: no X.509 bundle for %q", td.Name())
}

// GetJWTBundleForTrustDomain returns the JWT bundle loaded from
// identity.jwt_bundles for td.
func (s *fileSource) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if !s.plan.accepts(td) {
		return nil, notAccepted(td)
	}
	if b, ok := s.state.Load().jwt[td]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("identity: no JWT bundle for %q (configure identity.jwt_bundles)", td.Name())
}

// Close stops watching. Later calls return ErrClosed.
func (s *fileSource) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	return nil
}
