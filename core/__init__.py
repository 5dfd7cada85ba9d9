"""PropMe Explorer's evaluation engine: corpus, index, generation, tracing, metrics, PM.

UI-free: nothing here imports streamlit. See README.md for the module map.
"""
