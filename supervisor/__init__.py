"""The pyws root process, its config model and pyws-ctl (no asyncio, no threads)."""
