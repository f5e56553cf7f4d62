"""Put this folder (and the checkout) on PYTHONPATH of a process started with SPACES_ZERO_GPU=true:
Python runs this file at start-up, before app.py, so on a machine without CUDA the one seam of
tests/support/zerogpu_seam.py is in place before `spaces` forks its first GPU worker. `spaces` is
imported first, as app.py itself does; on a machine with a GPU nothing is replaced."""

import os

if os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true"):
    import spaces  # noqa: F401 - before torch, as on a Space

    from tests.support.zerogpu_seam import install_cpu_worker_seam

    install_cpu_worker_seam()
