"""Streamlit-aware helpers shared by the pages (see README: app/*.py)."""
