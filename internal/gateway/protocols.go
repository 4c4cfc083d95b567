package gateway

// Protocol packages register their factory here, one line each, so the
// composition root stays the only place that knows every protocol.
func init() {
}
