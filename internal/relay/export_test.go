package relay

// Connections reports the connections the relay holds and from how many
// addresses, for tests.
func (r *Relay) Connections() (total, addrs int) {
	l := r.lim.Load()
	if l == nil {
		return 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, len(l.per)
}
