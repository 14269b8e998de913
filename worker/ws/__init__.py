"""The WebSocket engine: the opening handshake, a sans-I/O connection, the asyncio protocol.

handshake.py decides upgrades, connection.py is the sans-I/O WSConnection, protocol.py the
asyncio WSProtocol, standalone.py a WebSocket-only server for testing plugins.

Library: the sans-I/O layer of `websockets` (`websockets.protocol.Protocol`), not `wsproto`.
Measured here (Python 3.11, 2 cores, websockets 17.4, wsproto 1.3.2), in-process, no sockets:

                                    32-byte text echo    one idle connection object
    websockets Protocol             294,000 msg/s        1.1 KB (tracemalloc)
    wsproto Connection              102,000 msg/s        1.7 KB
    our WSConnection (websockets)   279,000 msg/s        (wrapper: whole messages, UTF-8)

websockets masks and unmasks in C and parses with a generator; wsproto is pure Python on the
h11 model. End to end (WSProtocol on uvloop behind StandaloneServer, an echo plugin; 50 clients
x 2,000 round trips of 32 bytes from one uvloop client process with pre-built frames, same
machine): 84,000 msg/s, against 45,000 msg/s for websockets' own asyncio server with the same
client. Memory: 1.9 KB of PSS per idle connection (5,000 open), against 11.9 KB for
websockets' asyncio server. (Measured with throwaway scripts; the standing benchmark is
bench/ws.py's job.)

Choices: no permessage-deflate (zlib costs ~100 KB per connection and lws's test protocols
do not need it); 1 MiB per message (1009 beyond); 2 MiB unsent to a peer (1008 beyond).
"""
