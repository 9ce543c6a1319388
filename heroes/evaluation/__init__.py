"""Evaluation: predictions tables, statistics, the seed grid, costs and explanations."""
