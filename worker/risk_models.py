"""The risk-model registry of this deployment.

With the data folder as the object store, it is the folder ``models/`` there. With an
object store of its own (``VITALQ_STORAGE_URL``), every machine keeps a copy under its
own data folder, brought up to date from the store when the registry is opened, and a
model registered or activated on one machine is written to the store for the others.
A model version's files never change once written; ``active.json`` does.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ml.risk import ModelRegistry

from .objects import S3Bucket, get_store
from .settings import get_settings

PREFIX = "models/"


def registry() -> ModelRegistry:
    store = get_store()
    if store.is_local:
        return ModelRegistry(get_settings().data_dir / "models")
    return SharedRegistry(store)


class SharedRegistry(ModelRegistry):
    """A registry whose copy in this machine's data folder follows the object store."""

    def __init__(self, store: S3Bucket):
        super().__init__(get_settings().data_dir / "models")
        self.store = store
        self._pull()

    def _pull(self) -> None:
        with tempfile.TemporaryDirectory(dir=self.root, prefix=".pull-") as incoming:
            for stored in self.store.list(PREFIX):
                relative = stored.key[len(PREFIX):]
                local = self.root / relative
                if relative == "active.json" or not local.exists():
                    local.parent.mkdir(parents=True, exist_ok=True)
                    # Moved into place whole: readers see the old file or the new one.
                    self.store.fetch(self.store.location(stored.key), Path(incoming)).replace(local)

    def _claim_version(self):
        """The next version number no machine has claimed: a conditional write of its
        claim in the store decides between two machines training at once."""
        taken = {int(stored.key[len(PREFIX):].split("/")[0]) for stored in self.store.list(PREFIX)
                 if stored.key[len(PREFIX):].split("/")[0].isdigit()}
        taken |= {int(path.name) for path in self.root.iterdir() if path.name.isdigit()}
        version = max(taken, default=0) + 1
        while not self.store.put_bytes_if_absent(f"{PREFIX}{version}/claim",
                                                 json.dumps({"claimed_by": get_settings().data_dir.name}).encode()):
            version += 1
        folder = self.root / str(version)
        folder.mkdir(exist_ok=True)
        return version, folder

    def register(self, trained, *, name: str, training_sha256: str, demo: bool = False, activate: bool = True):
        record = super().register(trained, name=name, training_sha256=training_sha256, demo=demo, activate=False)
        folder = self.root / str(record.version)
        # meta.json last: a version is listed once its meta is stored, and by then its model is.
        for path in sorted(folder.iterdir(), key=lambda path: path.name == "meta.json"):
            self.store.upload(path, f"{PREFIX}{record.version}/{path.name}")
        return self.activate(record.version) if activate else record

    def activate(self, version: int):
        record = super().activate(version)
        self.store.upload(self.root / "active.json", f"{PREFIX}active.json")
        return record
