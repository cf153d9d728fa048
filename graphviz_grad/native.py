"""Build gradviz's optional C++ hooks, or say whether they are used (`capture.native`).

python -m graphviz_grad.native          # build them (g++ and ninja; about 20 s, once)
python -m graphviz_grad.native --check  # exit 0 if they are built and used
"""

from __future__ import annotations

from .capture.native import main

if __name__ == "__main__":
    raise SystemExit(main())
