"""Exercise every SDK feature the pipeline uses, then print the task id as JSON.

Usage: python sdk_roundtrip.py PROJECT NAME OUTDIR
"""

import json
import sys
from pathlib import Path

import torch  # imported before Task.init so torch.save is captured as an output model

import numpy as np
from clearml import OutputModel, Task
from omegaconf import OmegaConf

project, name, outdir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
task = Task.init(project_name=project, task_name=name, output_uri=True, reuse_last_task_id=False)
params = task.connect({"train.lr": 0.01, "epochs": 2, "model": {"channels": 8}}, name="General")
cfg = OmegaConf.create({"data": {"spacing": [1.5, 1.5, 2.0]}, "trainer": {"max_epochs": 2}})
task.connect_configuration(OmegaConf.to_container(cfg, resolve=True), name="OmegaConf")

logger = task.get_logger()
for it in range(3):
    logger.report_scalar("loss", "train", value=1.0 / (it + 1), iteration=it)
    logger.report_scalar("dice", "val", value=0.5 + 0.1 * it, iteration=it)
logger.report_image("slices", "axial", iteration=1, image=np.full((16, 16, 3), 128, dtype=np.uint8))
logger.report_table("metrics", "per case", iteration=0, table_plot=[["case", "dice"], ["a", 0.7], ["b", 0.8]])
logger.report_text("round trip text line")
logger.report_single_value("best_dice", 0.8)

task.upload_artifact("summary", artifact_object={"best_dice": 0.8, "cases": ["a", "b"]}, wait_on_upload=True)
(outdir / "notes.txt").write_text("artifact file\n")
task.upload_artifact("notes", artifact_object=str(outdir / "notes.txt"), wait_on_upload=True)

weights = outdir / "registered.pt"
torch.save({"w": torch.arange(4.0)}, weights)
model = OutputModel(task=task, name="registered-model", framework="PyTorch")
model.update_weights(weights_filename=str(weights), auto_delete_file=False, iteration=2)
model.set_metadata("spacing", "1.5", "str")

torch.save({"w": torch.ones(3)}, outdir / "auto.pt")  # captured automatically

logger.flush(wait=True)
task.flush(wait_for_uploads=True)
task_id = task.id
task.close()
print(json.dumps({"task_id": task_id}))
