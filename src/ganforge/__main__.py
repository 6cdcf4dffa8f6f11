"""`python -m ganforge ...` (and `torchrun ... -m ganforge train ...`): the same as the `ganforge` command."""

from .cli import main

main(prog_name="ganforge")
