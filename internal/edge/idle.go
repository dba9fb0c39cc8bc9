package edge

import (
	"bufio"
	"net"
)

// An idle connection's only goroutine is its reader, parked until the
// client sends something; the size of that goroutine's stack is most of
// what the connection costs. Parked inside gorilla's ReadMessage it needs
// 4 KiB; parked in waitReadable, 2 KiB. So the reader waits there, and
// takes the pongs that answer the edge's pings itself (skipPongs): gorilla
// would handle one inside ReadMessage and then park there, deep, until the
// next frame.

// awaitFrames waits, on a shallow stack, until a frame other than a pong
// is at hand (or the socket fails), then reads on.
func (c *conn) awaitFrames() {
	for c.br != nil && c.br.Buffered() == 0 {
		waitReadable(c.raw)
		if !skipPongs(c.br, c.pong) {
			break
		}
	}
	c.readFrames()
}

// skipPongs takes the whole pong frames at the head of br, calling pong for
// each, and reports whether that left nothing buffered. Anything else, a
// pong not whole in the buffer or a read error, it leaves to gorilla. A
// client's pong is a final, masked control frame of at most 125 bytes:
// 0x8A, 0x80|length, a 4-byte mask, the payload (RFC 6455, 5.2). Between
// messages gorilla holds no state of a frame, so taking one there is safe.
func skipPongs(br *bufio.Reader, pong func()) (empty bool) {
	for {
		h, err := br.Peek(2)
		if err != nil || h[0] != 0x8A || h[1]&0x80 == 0 || h[1]&0x7F > 125 {
			return false
		}
		n := 2 + 4 + int(h[1]&0x7F)
		if br.Buffered() < n {
			return false
		}
		_, _ = br.Discard(n)
		pong()
		if br.Buffered() == 0 {
			return true
		}
	}
}

// rawConn is the socket under a corkConn, what waitReadable waits on.
func rawConn(nc net.Conn) net.Conn {
	if cc, ok := nc.(*corkConn); ok {
		return cc.Conn
	}
	return nc
}
