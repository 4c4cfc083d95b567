package audit

import "errors"

// ErrUnavailable is wrapped by every Append error caused by the log itself
// (write or fsync failure, queue full, log closed). The gateway maps it to
// 503 audit_unavailable and does not forward: no record, no request.
var ErrUnavailable = errors.New("audit: log unavailable")

// ErrClosed is wrapped (together with ErrUnavailable) by Append after Close.
var ErrClosed = errors.New("audit: log closed")

// ErrBroken is returned by Open when the existing file's chain does not
// verify: Warden refuses to extend a log it cannot vouch for. Move the file
// aside after inspecting it with `warden audit verify`.
var ErrBroken = errors.New("audit: existing log does not verify")
