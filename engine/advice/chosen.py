"""What Recommended chooses itself: importable without torch (the app's first window uses it)."""

#: The (section, field) settings a Recommended run chooses itself; the app greys them out.
CHOSEN_FIELDS = frozenset(
    {
        ("schedule", "epochs"),
        ("schedule", "batch_size"),
        ("schedule", "schedule"),
        ("schedule", "warmup_fraction"),
        ("optim", "lr"),
        ("optim", "backbone_lr_scale"),
        ("optim", "weight_decay"),
    }
)
