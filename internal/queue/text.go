package queue

import "github.com/flowgate/flowgate/internal/store"

// clean makes every text field of a message storable.
func (m *Message) clean() {
	for _, p := range []*string{&m.UID, &m.ClientIP, &m.Helo, &m.TLSVersion, &m.TLSCipher, &m.ClientCert, &m.Sender,
		&m.MessageIDHeader, &m.InboundConnector, &m.Attribution, &m.Reply} {
		*p = store.CleanText(*p)
	}
	for i := range m.Recipients {
		r := &m.Recipients[i]
		r.Address, r.Connector, r.RouteReason, r.LastReply = store.CleanText(r.Address), store.CleanText(r.Connector), store.CleanText(r.RouteReason), store.CleanText(r.LastReply)
	}
	for i := range m.Events {
		m.Events[i].Type, m.Events[i].Detail = store.CleanText(m.Events[i].Type), store.CleanText(m.Events[i].Detail)
	}
}
