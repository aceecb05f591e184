"""The committed JSON Schemas (docs/schemas) must match the models they are generated from."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from stockflow.cli.schema import schema
from stockflow.models import INPUT_EVENT_TYPES, OUTPUT_EVENT_TYPES, DeadLetter
from stockflow.schemas import DIALECT, render_schemas, write_schemas

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "schemas"
REGENERATE = "stockflow schema --out docs/schemas"


def test_committed_schemas_match_the_models(tmp_path: Path) -> None:
    write_schemas(tmp_path)
    generated = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    committed = {path.name: path.read_bytes() for path in COMMITTED.glob("*.json")}
    assert sorted(committed) == sorted(generated), f"schema files differ; run `{REGENERATE}`"
    stale = [name for name in generated if committed[name] != generated[name]]
    assert not stale, f"{stale} drifted from stockflow.models; run `{REGENERATE}`"


def test_one_schema_per_public_event_and_an_index() -> None:
    files = render_schemas()
    models = [*INPUT_EVENT_TYPES, *OUTPUT_EVENT_TYPES]
    assert DeadLetter in models
    assert sorted(files) == sorted([f"{m.__name__}.json" for m in models] + ["index.json"])
    index = json.loads(files["index.json"])
    assert [entry["name"] for entry in index["events"]] == [m.__name__ for m in models]
    for model in models:
        text = files[f"{model.__name__}.json"]
        assert text.endswith("}\n")
        document = json.loads(text)
        assert document["$schema"] == DIALECT
        assert document["title"] == model.__name__
        assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_inputs_allow_extra_fields_and_outputs_list_every_field() -> None:
    files = render_schemas()
    placed = json.loads(files["OrderPlaced.json"])
    assert "additionalProperties" not in placed
    assert placed["required"] == ["type", "order_id", "lines"]
    reserved = json.loads(files["OrderReserved.json"])
    assert reserved["additionalProperties"] is False
    assert reserved["required"] == sorted(reserved["properties"])
    assert reserved["$defs"]["LineRefusal"]["required"] == [
        "available",
        "product_id",
        "quantity",
        "reason",
    ]


def test_schema_command_writes_the_files(tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    result = CliRunner().invoke(schema, ["--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == len(INPUT_EVENT_TYPES) + len(OUTPUT_EVENT_TYPES) + 1
    for path in out.iterdir():
        assert path.read_bytes() == (COMMITTED / path.name).read_bytes()
