"""Where the production model lives: the ClearML model registry (online) or a local champion folder.

Online, the production model (the champion) is the published model carrying ``promote.production_tag``
in ``clearml.project`` (or one of its subprojects, where pipeline runs put their steps). Promoting a
challenger publishes it, adds the tag, records the decision and the previous champion's id in its
metadata, then removes the tag from the previous champion (so a crash in between leaves two tagged
models, of which the newest wins, never none).

Offline (no server), ``promote.local_registry`` is a folder holding the champion's weights and a
``champion.json`` (id, config, test metrics, previous champion), written atomically.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import secrets
from .clearml_io import project_tree_ids
from .errors import ConfigError, DataError
from .promotion import Decision

log = logging.getLogger(__name__)

CHAMPION_FILE = "champion.json"
CHAMPION_WEIGHTS = "champion.pt"


@dataclass(frozen=True)
class Champion:
    """The production model: its id, a local copy of its weights and the run config it was trained with."""

    id: str
    weights: Path
    config: dict[str, Any]
    name: str = ""


class ClearMLRegistry:
    """Production model = the newest published model tagged ``tag`` in ``project`` and its subprojects."""

    def __init__(self, project: str, tag: str) -> None:
        self.project, self.tag = project, tag

    def champion(self) -> Champion | None:
        from clearml import Model
        from clearml.backend_api.session.client import APIClient

        projects = project_tree_ids(self.project)
        if not projects:
            return None
        found = APIClient().models.get_all(project=projects, tags=[self.tag], ready=True,
                                      only_fields=["id", "name", "last_update"], order_by=["-last_update"])
        if not found:
            return None
        if len(found) > 1:
            log.warning("%d published models carry the tag '%s' in %s; the newest (%s) is production", len(found),
                        self.tag, self.project, found[0].id)
        model = Model(model_id=found[0].id)
        # the SDK returns nested OrderedDicts; plain containers for OmegaConf
        config = json.loads(json.dumps(model.config_dict or {}))
        return Champion(id=model.id, weights=Path(model.get_local_copy(raise_on_error=True)), config=config,
                        name=str(model.name))

    def promote(self, challenger_id: str, previous: Champion | None, decision: Decision) -> None:
        from clearml import Model

        model = Model(model_id=challenger_id)
        self.record(challenger_id, decision, previous)
        model.publish()
        model.tags = sorted({*(model.tags or []), self.tag})
        if previous is not None:
            old = Model(model_id=previous.id)
            old.set_metadata("replaced_by", challenger_id, v_type="str")
            old.tags = [t for t in (old.tags or []) if t != self.tag]
        log.info("model %s is now the production model (tag '%s')%s", challenger_id, self.tag,
                 f"; previous: {previous.id}" if previous else "")

    def record(self, challenger_id: str, decision: Decision, previous: Champion | None) -> None:
        """Write the decision (and the champion it was compared with) into the challenger's metadata."""
        from clearml import Model

        model = Model(model_id=challenger_id)
        for key, value in {**decision.metadata(), "previous_champion": previous.id if previous else ""}.items():
            model.set_metadata(key, value, v_type="str")


class LocalRegistry:
    """A champion folder on this machine: ``champion.json`` and ``champion.pt``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def champion(self) -> Champion | None:
        path = self.folder / CHAMPION_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            weights = self.folder / str(data["weights"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(str(path), f"unreadable champion record ({e}); fix or delete it to start over") from e
        if not weights.is_file():
            raise DataError(str(path), f"names weights '{weights}', which do not exist")
        return Champion(id=str(data["id"]), weights=weights, config=dict(data.get("config") or {}),
                        name=str(data.get("name", "")))

    def promote(self, challenger_id: str, weights: Path, config: dict[str, Any], previous: Champion | None,
                decision: Decision) -> None:
        if not weights.is_file():
            raise ConfigError("inputs.metrics_json", f"the evaluated weights '{weights}' do not exist")
        self.folder.mkdir(parents=True, exist_ok=True)
        staged = self.folder / f".{CHAMPION_WEIGHTS}.tmp"
        shutil.copyfile(weights, staged)
        os.replace(staged, self.folder / CHAMPION_WEIGHTS)
        record = {"id": challenger_id, "name": weights.name, "weights": CHAMPION_WEIGHTS, "source": str(weights),
                  "promoted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "previous_champion": previous.id if previous else None, "decision": decision.metadata(),
                  "config": secrets.mask(config)}
        staged_json = self.folder / f".{CHAMPION_FILE}.tmp"
        staged_json.write_text(json.dumps(record, indent=2))
        os.replace(staged_json, self.folder / CHAMPION_FILE)
        log.info("%s is now the local production model (%s)", challenger_id, self.folder / CHAMPION_FILE)
