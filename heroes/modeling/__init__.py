"""Backbones, weights, model building, feature cache, training, prediction and export."""
