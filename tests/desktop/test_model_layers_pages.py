"""Model and Layers pages: catalog with offline marks, freeze presets and parameter counts."""

from __future__ import annotations

import re

import pytest
from PySide6.QtCore import Qt

from engine.config import Method, ModelConfig, RunConfig

TINY = ModelConfig(backbone="timm:test_efficientnet", pretrained=False)


def _count(label_text: str) -> tuple[int, int]:
    numbers = [int(n.replace(",", "")) for n in re.findall(r"[\d,]+(?=\D)", label_text + " ")]
    return numbers[0], numbers[1]


@pytest.fixture
def layers(qtbot, ctx):
    from desktop.pages.layers_page import LayersPage

    ctx.state.set_config(RunConfig(model=TINY))
    page = LayersPage(ctx)
    qtbot.addWidget(page)
    page.show()
    page.on_shown()
    qtbot.waitUntil(lambda: page.model is not None, timeout=30000)
    return page


def test_layer_groups_are_listed_in_order_with_the_head_last(layers):
    names = [layers.tree.topLevelItem(i).text(0) for i in range(layers.tree.topLevelItemCount())]
    assert names[0] == "stem" and names[-1] == "head"
    assert names == [g.name for g in layers.model.groups]


def test_presets_change_the_trainable_count(layers, ctx, qtbot):
    head = layers.model.groups[-1].num_params
    total = sum(g.num_params for g in layers.model.groups)
    assert ctx.state.config.adapt.method is Method.LINEAR_PROBE
    assert _count(layers.trainable_label.text()) == (head, total)

    layers.findChild(type(layers.preset_buttons.button(0)), "preset_full").click()
    assert ctx.state.config.adapt.method is Method.FULL
    assert _count(layers.trainable_label.text()) == (total, total)

    layers.findChild(type(layers.preset_buttons.button(0)), "preset_last-n").click()
    layers.n_slider.setValue(1)
    last = layers.model.groups[-2].num_params
    assert ctx.state.config.adapt.last_n == 1
    assert _count(layers.trainable_label.text()) == (head + last, total)
    # The slider works the estimate out in the background; let it finish.
    qtbot.waitUntil(lambda: "About" in layers.estimate_label.text(), timeout=30000)


def test_unticking_a_group_makes_a_custom_plan(layers, ctx):
    item = layers.tree.topLevelItem(0)  # stem, frozen under linear probe
    assert item.checkState(0) == Qt.CheckState.Checked
    item.setCheckState(0, Qt.CheckState.Unchecked)
    adapt = ctx.state.config.adapt
    assert adapt.method is Method.CUSTOM
    assert "stem" not in adapt.frozen_groups and len(adapt.frozen_groups) >= 1
    head = layers.model.groups[-1].num_params
    stem = layers.model.groups[0].num_params
    assert _count(layers.trainable_label.text())[0] == head + stem


def test_head_cannot_be_frozen(layers):
    head_item = layers.tree.topLevelItem(layers.tree.topLevelItemCount() - 1)
    assert not head_item.flags() & Qt.ItemFlag.ItemIsEnabled


def test_model_page_lists_the_catalog_with_the_starter_offline(qtbot, ctx):
    from desktop.pages.model_page import ModelPage

    page = ModelPage(ctx)
    qtbot.addWidget(page)
    page.on_shown()
    qtbot.waitUntil(lambda: page.table.rowCount() > 0, timeout=30000)
    names = [page.table.item(r, 0).text() for r in range(page.table.rowCount())]
    assert names[0] == "efficientnet_lite0"
    assert "offline" in page.table.item(0, 4).text()
    # Out of the box the starter is selected.
    assert page.table.selectionModel().selectedRows()[0].row() == 0
    page.search.setText("resnet")
    visible = [names[r] for r in range(len(names)) if not page.table.isRowHidden(r)]
    assert visible and all("resnet" in n for n in visible)


def test_choosing_a_backbone_without_weights_explains_how_to_get_them(
    qtbot, ctx, monkeypatch, tmp_path
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    from desktop.pages.model_page import ModelPage

    page = ModelPage(ctx)
    qtbot.addWidget(page)
    page.on_shown()
    qtbot.waitUntil(lambda: page.table.rowCount() > 0, timeout=30000)
    names = [page.table.item(r, 0).text() for r in range(page.table.rowCount())]
    page.table.selectRow(names.index("resnet50"))
    assert ctx.state.config.model.backbone == "resnet50"
    text = page.info.text()
    assert "not on this computer" in text and "resnet50" in text
