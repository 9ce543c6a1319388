"""The embedded synthetic superhero dataset: procedural drawings and the dataset writer with injected defects."""
