"""The cached-feature path: the frozen prefix runs once per image and view, its outputs kept; the trainable suffix
fits on them (span path, bf16 precision where native)."""
