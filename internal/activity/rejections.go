package activity

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Limit names, the "limit" label of chat_rate_limited_total.
const (
	LoginFailuresPerUser = "login_failures_per_user"
	LoginFailuresPerAddr = "login_failures_per_addr"
	SignupsPerAddr       = "signups_per_addr"
	UserCommands         = "user_commands"       // per user, across connections and REST
	ConnectionCommands   = "connection_commands" // per WebSocket connection
	ServerKey            = "server_key"          // /v1/server/ calls per key
)

// Rejections counts what a rate limit refused, by limit name. The api and
// the edge of one process share one counter in its registry: the first to
// ask registers it, the others get that one.
func Rejections(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chat_rate_limited_total",
		Help: "Requests and commands refused by a rate limit, by limit.",
	}, []string{"limit"})
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
		// Only a clashing definition gets here, a programming error that
		// the metrics test shows; counting unregistered keeps serving.
	}
	return c
}
