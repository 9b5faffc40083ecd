"""Images, degradations and datasets."""
