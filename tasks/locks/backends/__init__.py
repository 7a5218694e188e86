"""Lock backends, one module per store; pick one with ``tasks.locks.lock_backend_from_url``."""
