// Package clitest runs `warden scan` and `warden admission` end to end
// through cli.Main. It holds tests only; it lives apart from internal/scan
// so that the scanner's own tests do not depend on every other command
// compiling.
package clitest
