"""Machine learning on the feature marts: purchase intent and top-3 categories (MLflow)."""
