"""Raw images in: decode by content, scan to a manifest, split, decoded arrays, augmentation, synthetic data."""
