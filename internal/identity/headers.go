package identity

import "net/http"

// identityHeaders are inbound headers that some proxy, ingress or auth
// middleware uses to assert who the caller is. Warden never believes them
// (identity comes from cryptography only) and removes them so no upstream
// can be fooled either. Matching ignores case and treats '_' as '-',
// because some servers fold X_SPIFFE_ID into the same variable.
var identityHeaders = []string{
	"X-Forwarded-Client-Cert", // Envoy XFCC
	"X-Spiffe-Id",
	"X-Warden-Spiffe-Id", // Warden's own default identity header
	"X-Forwarded-User",
	"X-Forwarded-Email",
	"X-Forwarded-Preferred-Username",
	"X-Forwarded-Groups",
	"X-Forwarded-Access-Token",
	"X-Remote-User",
	"X-Remote-Group",
	"X-Ssl-Client-Cert",
	"X-Ssl-Client-Dn",
	"X-Ssl-Client-Verify",
	"Ssl-Client-Cert",
	"X-Client-Dn",
	"X-Client-Verify",
	"Remote-User",
}

var identityHeaderPrefixes = []string{
	"X-Client-Cert",   // X-Client-Cert, X-Client-Cert-Chain, ...
	"X-Auth-Request-", // oauth2-proxy
	"X-Remote-Extra-", // Kubernetes authenticating proxy
	"X-Amzn-Oidc-",    // ALB
	"X-Goog-Authenticated-User-",
	"X-Ms-Client-Principal", // Azure App Service
}

// StripIdentityHeaders deletes every inbound header that claims an
// identity: the well-known ones above and the operator-configured
// header(s), e.g. config.Config.IdentityHeader. Call it on every request
// before anything reads headers, and before Warden sets its own identity
// header for the upstream.
func StripIdentityHeaders(h http.Header, configured ...string) {
	for k := range h {
		if isIdentityHeader(k, configured) {
			delete(h, k)
		}
	}
}

func isIdentityHeader(k string, configured []string) bool {
	for _, name := range identityHeaders {
		if headerEqual(k, name) {
			return true
		}
	}
	for _, name := range configured {
		if name != "" && headerEqual(k, name) {
			return true
		}
	}
	for _, p := range identityHeaderPrefixes {
		if len(k) >= len(p) && headerEqual(k[:len(p)], p) {
			return true
		}
	}
	return false
}

// headerEqual compares header names ignoring ASCII case and '_' vs '-'.
func headerEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == '_' {
			x = '-'
		}
		if y == '_' {
			y = '-'
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
