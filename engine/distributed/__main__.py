"""``python -m engine.distributed CONFIG``: the entry point torchrun runs (worker.py).

A process that trained (or failed with its sentence said) ends without the interpreter's
teardown, as `refit` does (engine/fast_exit.py): tearing down torch's C++ state after the process
group, with Gloo's threads, can abort a rank that finished its work ("terminate called without an
active exception", seen once in a test job), and it costs about 1.5 s a process."""

from engine.distributed.worker import main
from engine.fast_exit import exit_now

exit_now(main())
