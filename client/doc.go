// Package client is a Socket.IO client for Go programs that talk to the rtm
// server: integration tests, load generators and backends that join presence
// rooms.
//
// It speaks both protocol generations, chosen by Options.Protocol, over the
// websocket transport only (no long-polling, no upgrade); other namespaces
// and binary attachments are reached through Conn.Of (namespace.go):
//
//   - 4 (the default): Engine.IO 4 and Socket.IO protocol 5, as the
//     JavaScript socket.io-client 3.x and 4.x;
//   - 3: Engine.IO 3 and Socket.IO protocol 4, as socket.io-client 2.x.
//
// Events ("42[...]"), events with an ack id ("42<id>[...]") and acks
// ("43<id>[...]") are the same in both.
//
// # Connecting
//
// Dial opens a websocket to BASE/socket.io/?EIO=4&transport=websocket (or
// EIO=3) and reads the Engine.IO open packet. In protocol 3 the server then
// connects the root namespace unasked ("40"). In protocol 4 the client sends
// the CONNECT packet, "40" or "40{auth}" with Options.Auth, and the server
// answers 40{"sid":"..."}, the socket's id, or CONNECT_ERROR
// 44{"message":"..."}. Dial returns a *Conn only once the socket is
// connected. A refusal by the server (an HTTP error at the handshake, or a
// Socket.IO error packet instead of the connect packet) is reported as a
// *RefusedError, which wraps ErrRefused and carries the server's message (for
// example "unauthorized").
//
// # Events and acknowledgements
//
// Emit sends an event without an acknowledgement; Call sends one with an ack
// id and waits for the reply. Events sent by the server are delivered either to
// Options.OnEvent, called from the read loop in arrival order, or, when OnEvent
// is nil, through the channel returned by Events. That queue is unbounded, so a
// slow consumer never stalls the connection; a program that neither sets
// OnEvent nor reads Events lets events pile up in memory.
//
// The typed helpers in presence.go (Join, Heartbeat, Leave, Sync, SyncSince,
// Chat, ParsePresenceEvent, ParseChatMessage) implement the application
// protocol of PROTOCOL.md on top of Call; JoinRequest.Since and SyncSince
// recover what a client missed from the room's history (revision 3). A reply
// {ok:false,error:{code,message}} comes back as an *AckError.
//
// # Namespaces and binary attachments
//
// Of connects the same connection to another namespace ("/chat", with an
// auth object in protocol 4) and returns a *Namespace, whose Emit and Call
// take any number of arguments: []byte values (within []any and
// map[string]any too) go as binary attachments (BINARY_EVENT, binary
// frames after the packet, written in one turn), and Call's acknowledgement
// comes back decoded, attachments as []byte. The namespace's events arrive
// with the root namespace's, with Event.Namespace set; Event.Decode puts a
// binary event's attachments in place. Events of namespaces not connected
// through Of, and binary events of the root namespace, are ignored.
//
// # Keepalive
//
// In protocol 3 the client sends a ping every pingInterval (as announced by
// the server's open packet) and the server answers with a pong. In protocol 4
// the server pings every pingInterval and the client answers each ping with a
// pong at once; it sends no pings. Either way, a connection on which nothing
// arrives for pingInterval+pingTimeout is considered dead and ends with an
// error. Mute stops the client's side of this (pings or pongs) and the check
// itself, so that tests can watch the server drop a silent client.
//
// # Concurrency
//
// All methods of Conn are safe for concurrent use. Each connection runs two
// goroutines: the read loop, which parses frames, answers the server's pings,
// resolves acknowledgements and dispatches events, and a second one that sends
// the pings (protocol 3) and feeds the Events channel. No goroutine is
// started per message.
//
// # Ending
//
// Close says goodbye politely (a Socket.IO disconnect packet, then the
// websocket close handshake); Drop cuts the TCP connection as a network loss
// would. Either way, and when the server or the network ends the connection,
// Done is closed, Err tells why, and pending calls fail with ErrClosed.
package client
