"""The Space entry point: build the VoxSpace UI and serve it. All logic lives in voxspace/.

Run locally: python app.py   (serves http://127.0.0.1:7860; uses your HF_TOKEN or cached login)
"""

from voxspace.ui.app import launch

if __name__ == "__main__":
    launch()
