"""The shipped toy demo: corpus, tokenizer, model and prompt sets (see docs/demo.md)."""
