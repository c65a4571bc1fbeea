"""The Model page's "Allow code shipped with this model" checkbox and its warning."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QMessageBox
from reliability.hostile_models import add_code, save_vit


@pytest.fixture
def page(qtbot, ctx):
    from desktop.model.page import ModelPage

    page = ModelPage(ctx)
    qtbot.addWidget(page)
    return page


@pytest.fixture
def coded_folder(tmp_path):
    return add_code(save_vit(tmp_path / "someone-vit"), tmp_path / "SENTINEL")


def test_checkbox_is_off_and_disabled_for_models_without_code(page, ctx, tmp_path):
    from engine.trust import CHECKBOX

    box = page.remote_code
    assert box.text() == CHECKBOX and not box.isChecked() and not box.isEnabled()
    ctx.state.update("model", backbone=str(save_vit(tmp_path / "plain-vit")))
    assert not box.isEnabled() and not box.isChecked()


def test_ticking_warns_naming_the_folder_and_allows_only_when_confirmed(
    page, ctx, coded_folder, monkeypatch
):
    from engine import trust

    asked: list[str] = []

    def answer(reply):
        def warning(parent, title, text, *args):
            asked.append(text)
            return reply

        return warning

    ctx.state.update("model", backbone=str(coded_folder))
    box = page.remote_code
    assert box.isEnabled() and not box.isChecked()
    assert "ships Python code" in page.info.text()  # said before any run is started

    monkeypatch.setattr(QMessageBox, "warning", answer(QMessageBox.StandardButton.No))
    box.click()
    assert str(coded_folder) in asked[-1] and "config.json" in asked[-1]
    assert not box.isChecked() and not trust.is_trusted(coded_folder)
    assert not ctx.state.config.model.allow_remote_code

    monkeypatch.setattr(QMessageBox, "warning", answer(QMessageBox.StandardButton.Yes))
    box.click()
    assert box.isChecked() and trust.is_trusted(coded_folder)
    assert "ships Python code" not in page.info.text()
    assert ctx.state.config.model.allow_remote_code  # recorded, not deciding
    assert trust.remote_code_kwargs(coded_folder, "x") == {"trust_remote_code": True}

    module = coded_folder / "modeling_evil.py"
    module.write_text(module.read_text() + "# changed\n")
    page.on_shown()
    assert not box.isChecked()  # the changed folder is no longer allowed

    trust.trust_folder(coded_folder)
    page.on_shown()
    assert box.isChecked()
    box.click()  # untick: off the allow-list again, with no question asked
    assert not box.isChecked() and not trust.is_trusted(coded_folder)
    assert len(asked) == 2
