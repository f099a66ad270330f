"""The module README documents exactly the module's inputs and outputs."""

from __future__ import annotations

import re
from pathlib import Path

MODULE = Path(__file__).resolve().parents[1] / "modules" / "uploadgate"


def _declared(kind: str, filename: str) -> set[str]:
    text = (MODULE / filename).read_text(encoding="utf-8")
    return set(re.findall(rf'^{kind} "([^"]+)"', text, flags=re.M))


def _table(section: str) -> set[str]:
    readme = (MODULE / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"^## {section}\n(.*?)(?=^## |\Z)", readme, flags=re.M | re.S)
    assert m, f"README.md has no '## {section}' section"
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", m.group(1), flags=re.M))


def test_every_variable_is_described_and_in_the_inputs_table():
    variables = _declared("variable", "variables.tf")
    assert variables
    assert _table("Inputs") == variables
    text = (MODULE / "variables.tf").read_text(encoding="utf-8")
    for block in re.split(r'^variable "', text, flags=re.M)[1:]:
        name = block.split('"', 1)[0]
        assert re.search(r'^  description = "\S', block, flags=re.M), f"variable {name} has no description"


def test_every_output_is_in_the_outputs_table():
    outputs = _declared("output", "outputs.tf")
    assert outputs
    assert _table("Outputs") == outputs
