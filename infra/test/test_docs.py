"""The module README documents exactly the module's inputs, outputs and
function environment, and the one provider gap it works around is real."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from test_agreement import module_environment_keys, strip_hcl_comments

MODULE = Path(__file__).resolve().parents[1] / "modules" / "uploadgate"


def _declared(kind: str, filename: str) -> set[str]:
    text = (MODULE / filename).read_text(encoding="utf-8")
    return set(re.findall(rf'^{kind} "([^"]+)"', text, flags=re.M))


def _section(title: str) -> str:
    readme = (MODULE / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", readme, flags=re.M | re.S)
    assert m, f"README.md has no '## {title}' section"
    return m.group(1)


def _table(section: str) -> dict[str, list[str]]:
    """First-column name -> the other cells, for rows like | `name` | ... |."""
    rows = {}
    for line in _section(section).splitlines():
        m = re.match(r"^\| `([A-Za-z0-9_]+)` \|(.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split(" | ")]
    return rows


def _variable_descriptions() -> dict[str, str]:
    text = (MODULE / "variables.tf").read_text(encoding="utf-8")
    out = {}
    for block in re.split(r'^variable "', text, flags=re.M)[1:]:
        name = block.split('"', 1)[0]
        m = re.search(r'^  description = "((?:\\.|[^"\\])*)"', block, flags=re.M)
        assert m and m.group(1).strip(), f"variable {name} has no description"
        out[name] = m.group(1).replace('\\"', '"')
    return out


def test_every_variable_is_described_and_in_the_inputs_table():
    variables = _declared("variable", "variables.tf")
    assert variables
    table = _table("Inputs")
    assert set(table) == variables
    for name, description in _variable_descriptions().items():
        assert table[name][0] == description, f"README Inputs row of {name} differs from its description"


def test_every_output_is_in_the_outputs_table():
    outputs = _declared("output", "outputs.tf")
    assert outputs
    assert set(_table("Outputs")) == outputs


def test_environment_table_lists_exactly_the_function_environment():
    wired = module_environment_keys()
    assert wired
    assert set(_table("The function's environment")) == wired


# --------------------------------------------------------------------------
# invoked_via_function_url: set it as soon as the provider can
# --------------------------------------------------------------------------

def _permission_block(text: str, name: str) -> str:
    m = re.search(rf'resource\s+"aws_lambda_permission"\s+"{name}"\s*\{{(.*?)\n\}}', text, flags=re.S)
    assert m, f"no aws_lambda_permission.{name} in cloudfront.tf"
    return m.group(1)


def test_invoked_via_function_url_gap_is_real():
    """The InvokeFunction permission lacks invoked_via_function_url only
    because the provider has no such argument: once the provider in use has
    it, the module must set it. run.sh hands over the installed provider's
    schema (terraform providers schema -json)."""
    path = os.environ.get("UPLOADGATE_TF_PROVIDER_SCHEMA")
    if not path or not Path(path).is_file():
        pytest.fail("UPLOADGATE_TF_PROVIDER_SCHEMA must name the output of `terraform providers schema -json` "
                    "for the module; run infra/test/run.sh")
    schema = json.loads(Path(path).read_text(encoding="utf-8"))
    aws = next(v for k, v in schema["provider_schemas"].items() if k.endswith("/hashicorp/aws"))
    attributes = aws["resource_schemas"]["aws_lambda_permission"]["block"]["attributes"]
    # The schema is the real one: the arguments the module uses are there.
    assert {"action", "principal", "source_arn", "function_url_auth_type"} <= set(attributes)

    cloudfront = strip_hcl_comments((MODULE / "cloudfront.tf").read_text(encoding="utf-8"))
    invoke = _permission_block(cloudfront, "cloudfront_invoke_function")
    assert re.search(r'action\s*=\s*"lambda:InvokeFunction"', invoke)
    sets_it = re.search(r"invoked_via_function_url\s*=\s*true", invoke) is not None
    if "invoked_via_function_url" in attributes:
        assert sets_it, ("the AWS provider now has invoked_via_function_url: set it to true on "
                         "aws_lambda_permission.cloudfront_invoke_function and drop the workaround notes")
    else:
        assert not sets_it
        # The gap is documented where a user looks for it.
        readme = _section("Behind origin access control: what clients must do")
        assert "invoked_via_function_url" in readme and "schema" in readme
