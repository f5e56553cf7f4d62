"""demo_template/ stands alone and its README front matter is filled into a valid Space card."""

from __future__ import annotations

import ast

from huggingface_hub import SpaceCard

from voxspace.demo import TEMPLATE_DIR, TEMPLATE_FILES, render_template


def test_template_imports_nothing_from_voxspace_and_imports_spaces_before_torch():
    tree = ast.parse((TEMPLATE_DIR / "app.py").read_text())
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    modules += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [m for m in modules if m.split(".")[0] == "voxspace"]
    assert modules.index("spaces") < modules.index("torch")


def test_requirements_leave_torch_unpinned_for_zerogpu():
    lines = [ln.strip() for ln in (TEMPLATE_DIR / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert "torch" in lines
    assert "spaces" in {ln.split("==")[0] for ln in lines}
    assert {ln.split("==")[0] for ln in lines} >= {"transformers", "peft", "mistral-common[audio]"}


def test_readme_front_matter_is_filled():
    files = render_template("alice/voxtral-alice", "mistralai/Voxtral-Mini-3B-2507",
                            dataset="alice/voxspace-recordings")
    assert set(files) == set(TEMPLATE_FILES)
    readme = files["README.md"].decode()
    assert "{{" not in readme and "{%" not in readme
    card = SpaceCard(readme)
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
    assert card.data.title == "voxtral-alice demo"
    assert card.data.models == ["alice/voxtral-alice", "mistralai/Voxtral-Mini-3B-2507"]
    assert card.data.datasets == ["alice/voxspace-recordings"]
    assert "https://huggingface.co/alice/voxtral-alice" in card.text
    assert files["app.py"] == (TEMPLATE_DIR / "app.py").read_bytes()


def test_readme_survives_a_hostile_title_and_no_dataset():
    readme = render_template("alice/a", "b/c", title='My "demo"\nsdk: docker')["README.md"].decode()
    card = SpaceCard(readme)
    assert card.data.sdk == "gradio"
    assert '"' not in card.data.title and "\n" not in card.data.title
    assert card.data.datasets is None
