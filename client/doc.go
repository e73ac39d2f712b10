// Package client is a Socket.IO client for Go programs that talk to the rtm
// server: integration tests, load generators and backends that join presence
// rooms.
//
// It speaks Socket.IO protocol 4 over Engine.IO 3, the protocol of the
// JavaScript socket.io-client 2.x, over the websocket transport only (no
// long-polling, no upgrade, no binary attachments, root namespace only).
//
// # Connecting
//
// Dial opens a websocket to BASE/socket.io/?EIO=3&transport=websocket, reads
// the Engine.IO open packet and waits for the Socket.IO connect packet of the
// root namespace. It returns a *Conn only once the socket is connected. A
// refusal by the server (an HTTP error at the handshake, or a Socket.IO error
// packet instead of the connect packet) is reported as an error wrapping
// ErrRefused.
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
// The typed helpers in presence.go (Join, Heartbeat, Leave, Sync, Chat,
// ParsePresenceEvent, ParseChatMessage) implement the application protocol of
// PROTOCOL.md on top of Call. A reply {ok:false,error:{code,message}} comes
// back as an *AckError.
//
// # Keepalive
//
// As Engine.IO 3 requires, the client sends a ping every pingInterval (as
// announced by the server's open packet) and the server answers with a pong.
// A connection on which nothing arrives for pingInterval+pingTimeout is
// considered dead and ends with an error.
//
// # Concurrency
//
// All methods of Conn are safe for concurrent use. Each connection runs two
// goroutines: the read loop, which parses frames, resolves acknowledgements
// and dispatches events, and a second one that sends the pings and feeds the
// Events channel. No goroutine is started per message.
//
// # Ending
//
// Close says goodbye politely (a Socket.IO disconnect packet, then the
// websocket close handshake); Drop cuts the TCP connection as a network loss
// would. Either way, and when the server or the network ends the connection,
// Done is closed, Err tells why, and pending calls fail with ErrClosed.
package client
