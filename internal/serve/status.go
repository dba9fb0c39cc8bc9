package serve

import (
	"net/http"

	"github.com/seqchat/seqchat/events"
)

// HTTPStatus maps a protocol error code to its HTTP status.
func HTTPStatus(code events.Code) int {
	switch code {
	case events.CodeBadRequest:
		return http.StatusBadRequest
	case events.CodeUnauthorized:
		return http.StatusUnauthorized
	case events.CodeForbidden:
		return http.StatusForbidden
	case events.CodeNotFound:
		return http.StatusNotFound
	case events.CodeConflict, events.CodeRecallExpired:
		return http.StatusConflict
	case events.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case events.CodeRateLimited:
		return http.StatusTooManyRequests
	case events.CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
