"""The lwsws config dialect: one loader used by `pyws --check`, the root and the workers."""
