"""Pipeline steps (preprocess, train, evaluate), one file each, plus the code they share in ``common``."""
