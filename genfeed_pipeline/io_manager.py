"""Stores asset values as gzipped JSON, one file per asset key.

Values are dataclasses (or lists and dicts of them) serialised through pydantic's `TypeAdapter`, and
pandas frames as JSON in pandas' "split" layout (Decimal money as its text), so a
value written by one version of the code stays readable by the next, unlike a pickle of a class. File
names come from the asset key only: fal endpoint ids (which contain `/` and are prefixes of one another)
never become paths.
"""

from __future__ import annotations

import gzip
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import pandas as pd
from pydantic import TypeAdapter


class JsonAssetIOManager(dg.ConfigurableIOManager):
    base_dir: str

    def _path(self, asset_key: dg.AssetKey) -> Path:
        return Path(self.base_dir) / (".".join(asset_key.path) + ".json.gz")

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        path = self._path(context.asset_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(obj, pd.DataFrame):
            payload = obj.to_json(orient="split", date_format="iso", default_handler=str).encode()
        else:
            payload = TypeAdapter(type(obj)).dump_json(obj)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as stream:
                stream.write(payload)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        context.add_output_metadata({"stored_at": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        # A run's result loads an output through an input context that names only the upstream output.
        asset_key = context.asset_key if context.has_asset_key else context.upstream_output.asset_key
        path = self._path(asset_key)
        if not path.exists():
            raise FileNotFoundError(
                f"no stored value for asset {asset_key.to_user_string()} at {path}; materialize it first"
            )
        with gzip.open(path, "rb") as stream:
            payload = stream.read()
        expected = context.dagster_type.typing_type
        if expected is pd.DataFrame:
            return pd.read_json(io.StringIO(payload.decode()), orient="split")
        # Parsed by orjson, then validated as Python: pydantic's own JSON parser holds a second tree of
        # the whole value while it builds the first, which at 15,000 models costs ~140 MB more.
        return TypeAdapter(expected).validate_python(orjson.loads(payload))
