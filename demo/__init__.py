"""The shipped toy demo: corpus, tokenizer, model and prompt sets (see README.md, section "Demo bundle")."""
