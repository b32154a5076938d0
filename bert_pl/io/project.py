"""Where the project lives: the package, the project root (data/, outputs/) and the Hydra configs (conf/)."""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# In the repository: its root (conf/, data/, outputs/ beside bert_pl/). Installed (`pip install .`): the current
# folder, where data/ and outputs/ then go; the configs ship inside the package (bert_pl/conf -> ../conf).
_REPO = PACKAGE_DIR.parent
PROJECT_ROOT = _REPO if (_REPO / "conf").is_dir() and (_REPO / "train.py").is_file() else Path.cwd()
CONF_DIR = (_REPO / "conf") if PROJECT_ROOT == _REPO else PACKAGE_DIR / "conf"
