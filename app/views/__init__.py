"""Pure view models for the pages, one module per concern (no Streamlit in any of them)."""
