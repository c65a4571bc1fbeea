"""The parts of the modalities that live in the layers above them, imported by name on first use.

A modality module asks ``parts().TextPipeline`` rather than importing engine.training: the layers
above import ``engine.modalities`` to choose a modality once, so an import statement the other
way would close a circle. This table is the one place that names them (a new modality adds its
parts here); the bundle check reads it like any lazy_getattr table.
"""

from __future__ import annotations

from engine.lazy import lazy_getattr

_PARTS = {
    # training: what feeds the model
    "FeaturePipeline": "engine.training.pipeline",
    "ImagePipeline": "engine.training.pipeline",
    "TextFeaturePipeline": "engine.training.text_pipeline",
    "TextPipeline": "engine.training.text_pipeline",
    "text_epochs": "engine.training.text_pipeline",
    # models: backbones, weights, tokenizers
    "build_image_backbone": "engine.models.build",
    "HFBackbone": "engine.models.hf",
    "HFTextBackbone": "engine.models.text",
    "build_text_backbone": "engine.models.text",
    "load_tokenizer": "engine.models.text",
    "text_folder": "engine.models.text",
    "token_limit": "engine.models.text",
    "hf_folder": "engine.models.weights",
    "starter_file": "engine.models.weights",
    "text_starter_folder": "engine.models.weights",
    "repeated_block_groups": "engine.models.groups",
    # advice: the recipe of method auto
    "recommend_image": "engine.advice.recommend",
    "recommend_text": "engine.advice.recommend",
    # predictions and explanations
    "PredictionError": "engine.evaluation.predictions",
    "text_problem": "engine.evaluation.explain_text",
    "texts_of_files": "engine.evaluation.predict",
    # export
    "ImageLogits": "engine.export.traced",
    "TextLogits": "engine.export.traced",
    "BACKBONE_DIR": "engine.export.manifest",
    "preprocess_of": "engine.export.exported",
}

__getattr__ = lazy_getattr(__name__, _PARTS)
