"""clearml 2.1.12's Model API as the promotion step uses it; prints one JSON line.

Usage: python model_sdk.py MODEL_ID MODEL_NAME

``Model.publish`` (models.set_ready with publish_task=false), the ``Model.tags`` setter (models.edit with every
field), ``Model.set_metadata`` (models.add_or_update_metadata) and ``Model.query_models`` (models.get_all with an
exact, escaped name regex), including a tag the server refuses.
"""

import json
import sys

from clearml import Model

model_id, name = sys.argv[1:3]
model = Model(model_id=model_id)
published_before = model.published
model.publish()
model.publish()  # the SDK skips a published model, so the server's "model is ready" never reaches it
model.tags = ["production"]
model.set_metadata("score", "0.9", v_type="float")
try:
    model.tags = ["production", "__$all"]
    refused = None
except Exception as exc:  # the SDK raises on a refused call
    refused = str(exc)
print(json.dumps({
    "published_before": published_before,
    "published": Model(model_id=model_id).published,
    "tags": Model(model_id=model_id).tags,
    "metadata": Model(model_id=model_id).get_all_metadata(),
    "refused": refused,
    "exact": [m.id for m in Model.query_models(model_name=name)],
    "other_case": [m.id for m in Model.query_models(model_name=name.upper())],
    "published_only": [m.id for m in Model.query_models(model_name=name, only_published=True)],
}), flush=True)
