"""The Layers page: what to train (frozen groups, LoRA), the recipe advice and the LR finder."""
