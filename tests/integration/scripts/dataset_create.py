"""Create a dataset from a folder, upload and finalize it; print its id as JSON.

Usage: python dataset_create.py PROJECT NAME FOLDER
"""

import json
import sys

from clearml import Dataset

ds = Dataset.create(dataset_project=sys.argv[1], dataset_name=sys.argv[2])
ds.add_files(path=sys.argv[3])
ds.upload()
ds.finalize()
print(json.dumps({"dataset_id": ds.id}))
