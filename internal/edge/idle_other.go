//go:build !unix

package edge

import "net"

// waitReadable returns at once: without a peek at the socket the reader
// waits inside gorilla (idle.go).
func waitReadable(net.Conn) {}
