package identity_test

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/identity"
	"github.com/wardenhq/warden/internal/protocol"
)

// Example shows how a gateway wires a data-plane listener: one Source for
// the process, ServerOptions per listener, identity per request from the
// connection (or a JWT-SVID), never from a header.
func Example() {
	ctx := context.Background()
	log := slog.Default()
	cfg := config.Config{} // loaded elsewhere
	src, err := identity.NewSource(ctx, cfg.Identity, "/etc/warden", log)
	if err != nil {
		log.Error("identity", "error", err)
		return
	}
	defer src.Close()

	l := config.Listener{Name: "agents", Address: "127.0.0.1:8443", Auth: []string{"mtls", "jwt"}, JWTAudiences: []string{"warden"}}
	opts, err := identity.ListenerOptions(cfg.Identity, l)
	if err != nil {
		log.Error("listener", "error", err)
		return
	}
	var jwt *identity.JWTVerifier
	if identity.AcceptsJWT(l) {
		jwt = identity.NewJWTVerifier(src, l.JWTAudiences, opts.TrustDomains)
	}

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		identity.StripIdentityHeaders(r.Header, cfg.IdentityHeader)
		peer, err := identity.PeerFromTLS(r.TLS)
		if err != nil && jwt != nil {
			peer, err = jwt.FromRequest(r)
		}
		// A kept-alive connection can outlive its certificate.
		if err == nil && peer.Expired(time.Now()) {
			err = identity.ErrExpired
		}
		if err != nil {
			e := protocol.AsError(err) // JWT errors already are 401s
			if e.Status == http.StatusInternalServerError {
				e = &protocol.Error{Status: http.StatusUnauthorized, Code: protocol.CodeUnauthenticated, Message: "unauthenticated", Err: err}
			}
			http.Error(w, e.Message, e.Status)
			return
		}
		_ = peer.ID // → policy input, audit, the upstream identity header
	})

	m, _ := identity.NewMetrics(prometheus.NewRegistry()) // the admin registry in Warden
	srv := &http.Server{
		Addr:      l.Address,
		Handler:   handler,
		TLSConfig: identity.ServerTLSConfig(src, opts),
		ErrorLog:  m.ErrorLog(log),
	}
	_ = srv.ListenAndServeTLS("", "")

	// Upstream hop: mTLS pinned to the upstream's SPIFFE ID.
	_ = &http.Transport{TLSClientConfig: identity.ClientTLSConfig(src, spiffeid.RequireFromString("spiffe://warden.test/upstream/llm"))}
}
