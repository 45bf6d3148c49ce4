//go:build linux

package kvs

import "golang.org/x/sys/unix"

// A clustered tenant's connection on an event loop: its requests for other
// nodes' keys are forwarded and their replies awaited without blocking the
// loop. When a batch of requests leaves replies to await, the connection
// is parked: its requests are sent, a callback on each awaited reply
// counts them in, and the last one posts the connection back to its loop
// (waking it through its eventfd), which writes every reply in order and
// runs the input that came meanwhile.

// park queues c's forwarded requests to be sent at the end of the loop's
// turn (see sendPeers) and, unless their replies are all in already (then
// they are written to c's output now), parks c until they are. It reports
// whether c is parked.
func (l *evLoop) park(c *evConn) bool {
	ow := c.sess.ow
	for _, pc := range ow.peers {
		if !containsConn(l.peers, pc) {
			l.peers = append(l.peers, pc)
		}
	}
	clear(ow.peers)
	ow.peers = ow.peers[:0]
	// waiting counts the replies not in, plus one until every callback
	// is attached: only the last reply to come in posts c, and if all
	// are in already, none does and c is not parked.
	if c.onReply == nil {
		c.onReply = func() {
			if c.waiting.Add(-1) == 0 {
				l.post(c)
			}
		}
	}
	c.waiting.Store(1)
	ow.eachFuture(func(f *future) {
		if !f.isDone() {
			c.waiting.Add(1)
			f.attach(c.onReply)
		}
	})
	if c.waiting.Add(-1) == 0 {
		ow.drain()
		return false
	}
	c.parked = true
	return true
}

// sendPeers sends the forwarded requests queued in this turn of the loop:
// one write per peer connection for all the connections that ran in it,
// rather than one per connection.
func (l *evLoop) sendPeers() {
	for _, pc := range l.peers {
		pc.flush()
	}
	clear(l.peers)
	l.peers = l.peers[:0]
}

// post hands a connection whose replies are in back to its loop. Only the
// first post after the loop took the list wakes it, and only if the loop
// is not busy with a turn (it takes the list before waiting again): the
// others join the list it has yet to take. A reply the loop read itself
// (see peerEvent) thus wakes nothing.
func (l *evLoop) post(c *evConn) {
	if l.stopping.Load() {
		return // its eventfd may be closed (and its number reused)
	}
	l.postMu.Lock()
	wake := len(l.posted) == 0 && !l.busy
	l.posted = append(l.posted, c)
	l.postMu.Unlock()
	if wake {
		one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
		unix.Write(l.wakefd, one)
	}
}

// setBusy marks the loop in a turn (see post).
func (l *evLoop) setBusy() {
	l.postMu.Lock()
	l.busy = true
	l.postMu.Unlock()
}

// readWake consumes the eventfd's wake-up (it stays readable until read).
func (l *evLoop) readWake() {
	var b [8]byte
	unix.Read(l.wakefd, b[:])
}

// resumePosted resumes the posted connections (on the loop) and reports
// whether there were any; if not, the loop is no longer busy: a post
// wakes it from then on.
func (l *evLoop) resumePosted() bool {
	l.postMu.Lock()
	posted := l.posted
	l.posted = nil
	if len(posted) == 0 {
		l.busy = false
	}
	l.postMu.Unlock()
	for _, c := range posted {
		l.mu.Lock()
		live := l.conns[int32(c.fd)] == c
		l.mu.Unlock()
		if !live || !c.parked {
			continue // closed meanwhile
		}
		c.parked = false
		if c.pc != nil {
			l.resumeProto(c)
			continue
		}
		if ow := c.sess.ow; ow != nil {
			ow.drain()
		}
		if c.inOff {
			l.watchInput(c, true)
		}
		l.process(c)
	}
	return len(posted) > 0
}

// watchInput turns the watching of c's input on or off (a parked
// connection whose buffer is full is not read until it resumes).
func (l *evLoop) watchInput(c *evConn, on bool) {
	ev := unix.EpollEvent{Events: unix.EPOLLRDHUP, Fd: int32(c.fd)}
	if on {
		ev.Events |= unix.EPOLLIN
	}
	c.inOff = !on
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev)
}
