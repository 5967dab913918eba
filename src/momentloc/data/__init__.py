"""Annotation records, readers, feature stores, text and batching."""
