"""Fetch a dataset's local copy and print {relative path: text} as JSON. Usage: python dataset_get.py ID"""

import json
import sys
from pathlib import Path

from clearml import Dataset

root = Path(Dataset.get(dataset_id=sys.argv[1]).get_local_copy())
print(json.dumps({str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}))
