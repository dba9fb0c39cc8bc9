// Package docs holds the project's documentation: the client contract
// (protocol.md), the architecture and its invariants (architecture.md), the
// operator's pages, and the OpenAPI description of REST. Its tests keep the
// documentation true to itself and to the code.
package docs

import _ "embed"

// OpenAPI is openapi.yaml, the OpenAPI 3.1 description of REST that the
// api serves at /v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
