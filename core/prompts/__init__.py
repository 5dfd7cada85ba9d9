"""Prompt sets per setting: prefix attacks from the index, natural prompts from files."""
