"""Training corpora: reading documents from files and data sets."""
