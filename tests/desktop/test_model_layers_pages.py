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
    from desktop.layers.page import LayersPage

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
    assert ctx.state.config.adapt.method is Method.AUTO  # Recommended, out of the box
    layers.findChild(type(layers.preset_buttons.button(0)), "preset_linear-probe").click()
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
    assert "Peak memory about" in layers.estimate_label.text()  # and what the step needs


def test_unticking_a_group_makes_a_custom_plan(layers, ctx):
    ctx.state.update("adapt", method=Method.LINEAR_PROBE)
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
    from desktop.model.page import ModelPage

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
    from desktop.model.page import ModelPage

    page = ModelPage(ctx)
    qtbot.addWidget(page)
    page.on_shown()
    qtbot.waitUntil(lambda: page.table.rowCount() > 0, timeout=30000)
    names = [page.table.item(r, 0).text() for r in range(page.table.rowCount())]
    page.table.selectRow(names.index("resnet50"))
    assert ctx.state.config.model.backbone == "resnet50"
    text = page.info.text()
    assert "not on this computer" in text and "resnet50" in text


# -- LoRA -----------------------------------------------------------------------------------------

VIT = ModelConfig(backbone="timm:test_vit", pretrained=False)  # a tiny transformer, no weights


@pytest.fixture
def vit_layers(qtbot, ctx):
    from desktop.layers.page import LayersPage

    ctx.state.set_config(RunConfig(model=VIT))
    page = LayersPage(ctx)
    qtbot.addWidget(page)
    page.show()
    page.on_shown()
    qtbot.waitUntil(lambda: page.model is not None, timeout=30000)
    yield page
    qtbot.waitUntil(lambda: not ctx.pool.busy, timeout=30000)  # the epoch estimate


def _lora_button(page):
    return page.findChild(type(page.preset_buttons.button(0)), "preset_lora")


def _targets(page) -> dict[str, bool]:
    targets = page.lora_settings.targets
    return {
        targets.item(i).text(): targets.item(i).checkState() == Qt.CheckState.Checked
        for i in range(targets.count())
    }


def _wait_for_count(qtbot, page, expected: tuple[int, int]) -> None:
    """The adapters are counted in a worker (it copies the model)."""

    def shown() -> bool:
        text = page.trainable_label.text()
        return "counting" not in text and _count(text) == expected

    qtbot.waitUntil(shown, timeout=30000)


def test_choosing_lora_shows_its_controls_and_makes_a_lora_config(vit_layers, ctx, qtbot):
    page = vit_layers
    settings = page.lora_settings
    assert not settings.isVisible()
    _lora_button(page).click()

    assert ctx.state.config.adapt.method is Method.LORA
    assert settings.isVisible()
    assert _targets(page) == {"qkv": True, "proj": False, "fc1": False, "fc2": False}
    assert "Automatic: qkv" in settings.hint.text()
    # The backbone is frozen: its groups cannot be ticked, only the adapters train.
    for i in range(page.tree.topLevelItemCount()):
        assert not page.tree.topLevelItem(i).flags() & Qt.ItemFlag.ItemIsEnabled
    states = [page.tree.topLevelItem(i).text(2) for i in range(page.tree.topLevelItemCount())]
    assert states[1] == "frozen + adapters" and states[0] == "frozen" and states[-1] == "trained"
    assert not page.n_slider.isEnabled()

    # Rank 8 on qkv (64 -> 192) in 6 blocks, plus the head.
    head = page.model.groups[-1].num_params
    total = sum(g.num_params for g in page.model.groups)
    adapters = 6 * 8 * (64 + 192)
    _wait_for_count(qtbot, page, (head + adapters, total + adapters))

    settings.editor("lora_rank").setValue(4)
    settings.targets.item(3).setCheckState(Qt.CheckState.Checked)  # fc2: 192 -> 64
    adapt = ctx.state.config.adapt
    assert (adapt.lora_rank, adapt.lora_targets) == (4, ["qkv", "fc2"])
    adapters = 6 * 4 * (64 + 192 + 192 + 64)
    _wait_for_count(qtbot, page, (head + adapters, total + adapters))
    assert "Your choice" in settings.hint.text()

    settings.auto_button.click()
    assert ctx.state.config.adapt.lora_targets == []
    assert _targets(page)["qkv"] and not _targets(page)["fc2"]


def test_lora_settings_have_the_config_limits_and_help(vit_layers):
    from engine.config import AdaptConfig, field_help

    settings = vit_layers.lora_settings
    for name in ("lora_rank", "lora_alpha", "lora_dropout"):
        meta = field_help(AdaptConfig, name)
        editor = settings.editor(name)
        assert (editor.minimum(), editor.maximum()) == pytest.approx((meta["min"], meta["max"]))
        assert editor.toolTip().startswith(meta["help"])


def test_a_lora_config_round_trips_through_the_page(vit_layers, ctx):
    from engine.config import AdaptConfig

    page = vit_layers
    adapt = AdaptConfig(
        method=Method.LORA,
        lora_rank=16,
        lora_alpha=32.0,
        lora_dropout=0.05,
        lora_targets=["proj", "fc1"],
        lora_save_merged=True,
    )
    loaded = RunConfig(model=VIT, adapt=adapt)
    ctx.state.set_config(loaded)  # e.g. a saved run's config

    settings = page.lora_settings
    assert _lora_button(page).isChecked()
    assert settings.editor("lora_rank").value() == 16
    assert settings.editor("lora_alpha").value() == 32.0
    assert settings.editor("lora_dropout").value() == pytest.approx(0.05)
    assert settings.editor("lora_save_merged").isChecked()
    assert _targets(page) == {"qkv": False, "proj": True, "fc1": True, "fc2": False}

    # Widgets -> config: re-entering every value the widgets show gives the same config.
    for name in ("lora_rank", "lora_alpha", "lora_dropout"):
        editor = settings.editor(name)
        value = editor.value()
        editor.setValue(editor.minimum())
        editor.setValue(value)
    merged = settings.editor("lora_save_merged")
    merged.setChecked(False)
    merged.setChecked(True)
    item = settings.targets.item(1)
    item.setCheckState(Qt.CheckState.Unchecked)
    item.setCheckState(Qt.CheckState.Checked)
    _lora_button(page).click()
    assert ctx.state.config == loaded
    assert RunConfig.from_dict(ctx.state.config.to_dict()) == loaded


def test_unknown_lora_targets_are_shown_and_named(vit_layers, ctx, qtbot):
    from engine.config import AdaptConfig

    ctx.state.set_config(
        RunConfig(model=VIT, adapt=AdaptConfig(method=Method.LORA, lora_targets=["query"]))
    )
    assert _targets(vit_layers)["query  (not in this model)"]
    assert "no layer called query" in vit_layers.lora_settings.hint.text()
    # The engine's own sentence replaces the count.
    qtbot.waitUntil(lambda: "query" in vit_layers.trainable_label.text(), timeout=30000)


def test_lora_is_off_for_a_convnet(layers, ctx):
    button = _lora_button(layers)
    assert not button.isEnabled()
    assert button.toolTip() == "LoRA needs a transformer backbone"
    from engine.config import AdaptConfig

    # A config that asks for it anyway (a saved run) says why instead of counting.
    ctx.state.update_top(adapt=AdaptConfig(method=Method.LORA))
    assert "LoRA needs a transformer backbone" in layers.trainable_label.text()


# -- text data on the Model page -----------------------------------------------------------------


def _text_index(tmp_path):
    from engine.data.text import scan_text_source

    data = tmp_path / "notes.csv"
    data.write_text("text,label\n" + "".join(f"note {i},{'ab'[i % 2]}\n" for i in range(8)))
    return scan_text_source(data)


def _visible(page) -> list[str]:
    return [
        page.table.item(r, 0).text()
        for r in range(page.table.rowCount())
        if not page.table.isRowHidden(r)
    ]


def test_text_data_shows_and_preselects_text_backbones(qtbot, ctx, tmp_path):
    from desktop.model.page import ModelPage

    page = ModelPage(ctx)
    qtbot.addWidget(page)
    mismatches = []
    ctx.signals.backbone_mismatch.connect(mismatches.append)
    ctx.signals.dataset_scanned.emit(_text_index(tmp_path))  # loads the catalog by itself
    qtbot.waitUntil(lambda: page.table.rowCount() > 0 and not ctx.pool.busy, timeout=30000)

    assert ctx.state.config.model.backbone == "all-MiniLM-L6-v2"
    visible = _visible(page)
    assert visible[0] == "all-MiniLM-L6-v2" and "efficientnet_lite0" not in visible
    row = [page.table.item(r, 0).text() for r in range(page.table.rowCount())].index(visible[0])
    assert page.table.item(row, 3).text() == "text"  # no pixel size for a text model
    assert page.mismatch == "" and not mismatches

    page.show_all.setChecked(True)
    assert "efficientnet_lite0" in _visible(page)
    page.table.selectRow(0)  # the image starter
    assert ctx.state.config.model.backbone == "efficientnet_lite0"
    sentence = "efficientnet_lite0 is made for images, but the data holds texts"
    assert mismatches and mismatches[-1].startswith(sentence)
    assert "all-MiniLM-L6-v2" in mismatches[-1]
    assert sentence in page.info.text()


def test_image_data_after_text_data_switches_back(qtbot, ctx, tmp_path):
    from desktop.model.page import ModelPage
    from engine.data import scan_folder

    page = ModelPage(ctx)
    qtbot.addWidget(page)
    page.on_shown()
    qtbot.waitUntil(lambda: page.table.rowCount() > 0, timeout=30000)
    ctx.signals.dataset_scanned.emit(_text_index(tmp_path))
    assert ctx.state.config.model.backbone == "all-MiniLM-L6-v2"

    from test_data_page import make_dataset

    ctx.signals.dataset_scanned.emit(scan_folder(make_dataset(tmp_path / "p", {"a": 2, "b": 2})))
    assert ctx.state.config.model.backbone == "efficientnet_lite0"
    assert "all-MiniLM-L6-v2" not in _visible(page)
