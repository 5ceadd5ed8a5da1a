"""Prediction-log and label ingestion: sources, row validation, idempotent loading."""
