"""cgi:// mounts: a sans-I/O request lifecycle, and the process layer that drives it."""
