//go:build !unix

package edge

import "net"

// waitReadable returns at once: without a peek at the socket the idle
// reader waits in its buffer's read (skipPongs), a little deeper.
func waitReadable(net.Conn) {}
