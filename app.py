"""The Space entry point: build the VoxSpace UI and serve it. All logic lives in voxspace/.

Run locally: python app.py   (serves http://127.0.0.1:7860; uses your HF_TOKEN or cached login)
"""

import spaces  # noqa: F401 - first: on ZeroGPU it must patch torch before anything imports it

from voxspace.ui.app import launch

if __name__ == "__main__":
    launch()
