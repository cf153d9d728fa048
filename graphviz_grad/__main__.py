"""`python -m graphviz_grad` is the `gradviz` command."""

from .cli import main

main()
