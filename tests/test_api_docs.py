"""Every public name is documented, and docs/api.md is what `fisherlab api-docs` generates."""

from pathlib import Path

from fisherlab._apidoc import api_markdown, undocumented

API = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_every_public_name_has_a_docstring():
    assert undocumented() == []


def test_api_reference_is_current():
    assert API.exists(), "run `fisherlab api-docs docs/api.md`"
    assert API.read_text() == api_markdown(), "docs/api.md is stale: run `fisherlab api-docs docs/api.md`"


def test_api_reference_lists_the_contract_names():
    page = api_markdown()
    for name in ["fl.fisher(", "fl.ggn(", "fl.kfac.factors(", "fl.updates.natural_gradient(",
                 "fl.testing.diagnose(", "fl.testing.strategies.spd_matrices(", "fl.proofs.all("]:
        assert f"### `{name}" in page, name
