"""The cached-feature path: a frozen prefix run once per image, its outputs kept; span and precision of the trainable suffix."""
