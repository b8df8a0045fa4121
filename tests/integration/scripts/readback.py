"""Read a task back through the SDK and print what it holds as JSON.

Usage: python readback.py TASK_ID [DOWNLOAD_DIR]
"""

import json
import sys
from pathlib import Path

from clearml import Task

task = Task.get_task(task_id=sys.argv[1])
out = {
    "status": task.get_status(),
    "name": task.name,
    "parameters": task.get_parameters(),
    "configuration_names": sorted(task.get_configuration_objects() or {}),
    "scalars": task.get_reported_scalars(),
    "single_values": task.get_reported_single_values(),
    "console": list(task.get_reported_console_output(number_of_reports=50)),
    "debug_images": [s.get("url") for s in task.get_debug_samples("slices", "axial")],
    "plots": [p.get("metric") for p in task.get_reported_plots()],
    "artifacts": {},
    "models": {kind: [m.name for m in models] for kind, models in task.models.items()},
}
try:
    out["configuration"] = task.get_configuration_object_as_dict("OmegaConf")
except Exception as exc:  # report, don't hide: the test compares this field
    out["configuration"] = f"error: {exc!r}"
for key, artifact in task.artifacts.items():
    value = artifact.get()
    out["artifacts"][key] = value if isinstance(value, (dict, list, str, int, float)) else str(type(value))
if len(sys.argv) > 2:
    target = Path(sys.argv[2])
    for model in task.models["output"]:
        local = model.get_local_copy()
        out.setdefault("model_files", {})[model.name] = Path(local).stat().st_size if local else None
    notes = task.artifacts.get("notes")
    if notes is not None:
        out["notes_text"] = Path(notes.get_local_copy()).read_text()
print(json.dumps(out, default=str))
