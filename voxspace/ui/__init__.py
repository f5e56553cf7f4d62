"""The Gradio UI: one module per tab. The UI owns no logic; it calls voxspace's functions."""
