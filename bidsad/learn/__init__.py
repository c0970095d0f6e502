"""Group level: cohort, splits, streaming, models, training and evaluation (TensorFlow/Keras)."""
