"""Sans-I/O HTTP/1.1: request parsing, response serialisation and their limits; no I/O here."""
