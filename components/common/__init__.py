"""Code shared by the pipeline steps: data listing and validation, transforms, models, ClearML tracking."""
