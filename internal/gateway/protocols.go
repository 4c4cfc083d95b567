package gateway

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/protocol/anthropic"
	"github.com/wardenhq/warden/internal/protocol/mcp"
	"github.com/wardenhq/warden/internal/protocol/openai"
	"github.com/wardenhq/warden/internal/protocol/qdrant"
)

// protoDeps is what a protocol factory may use.
type protoDeps struct {
	log *slog.Logger
	reg prometheus.Registerer
	now func() time.Time
}

// protocolFactories builds one protocol value per backend kind in use, from
// every backend of that kind. This is the one place that knows every
// protocol package.
var protocolFactories = map[string]func(*config.Config, protoDeps) (protocol.Protocol, error){
	config.KindOpenAI: func(c *config.Config, d protoDeps) (protocol.Protocol, error) {
		return openai.FromConfig(c, d.log.With("protocol", "openai"))
	},
	config.KindAnthropic: func(c *config.Config, d protoDeps) (protocol.Protocol, error) {
		return anthropic.FromConfig(c, d.log.With("protocol", "anthropic"))
	},
	config.KindQdrant: func(c *config.Config, d protoDeps) (protocol.Protocol, error) {
		return qdrant.FromConfig(c, d.log.With("protocol", "qdrant"))
	},
	config.KindMCP: func(c *config.Config, d protoDeps) (protocol.Protocol, error) {
		opts := map[string]map[string]any{}
		for _, b := range c.Backends {
			if b.Kind == config.KindMCP {
				opts[b.Name] = b.Options
			}
		}
		return mcp.New(opts, mcp.Deps{Logger: d.log.With("protocol", "mcp"), Now: d.now, Registerer: d.reg, BaseDir: c.Dir()})
	},
}
