"""The plugins every worker has: lwsws's test protocols, compatible with them on the wire."""

from __future__ import annotations

from pyws.worker.builtin_plugins.dumb_increment import DumbIncrement
from pyws.worker.builtin_plugins.mirror import Mirror
from pyws.worker.builtin_plugins.post_demo import PostDemo
from pyws.worker.builtin_plugins.server_status import ServerStatus
from pyws.worker.plugin_api import Plugin

BUILTIN: tuple[type[Plugin], ...] = (DumbIncrement, Mirror, ServerStatus, PostDemo)
