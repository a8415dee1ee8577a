"""Copy a reproduction's report, cards, CSVs and figures (not the adversarial store or weights) into docs/.

    python scripts/collect_reproduction.py runs/reproduce/cru-net-mnist-full docs/reproductions/cru-net-mnist-full
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def main(src: str, dst: str) -> None:
    src_p, dst_p = Path(src), Path(dst)
    patterns = ["report.md", "reproduction.json", "eval/**/card.json", "eval/**/results.csv", "eval/**/*.png",
                "defenses/*/model.json", "figures/*.png", "*/detection.json",  # detection presets: figures, cards
                "ablation/*/*/card.json", "ablation/*/defense/model.json",  # loss ablations (DKN Fig. 2)
                "README.md", "summary.json", "report.html", "*/propagation.json", "*/propagation.md",  # propagation
                "*/propagation.png", "adaptive/*/card.json", "adaptive/*/report.md", "adaptive/*/results.csv"]
    for pattern in patterns:
        for f in src_p.glob(pattern):
            target = dst_p / f.relative_to(src_p)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
            print(target)


if __name__ == "__main__":
    main(*sys.argv[1:3])
