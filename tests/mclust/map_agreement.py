"""gmm_ppl's MAP-EM beside mclust's under its default prior, fit by fit: writes
tests/mclust/map_agreement.md. Run from the repository root (a minute or two on 2 cores):

    .venv/bin/python tests/mclust/map_agreement.py

For each of mclust's MAP fits in map.json (Old Faithful and the diabetes data, its ten
structures, K = 1..9), gmm_ppl's EM from mclust's start run to 1e-13 per row (as
tests/test_mclust_map.py runs it, which asserts what the table shows); the table gives
gmm_ppl's log posterior less the log posterior of mclust's fit (both by SciPy, under the
documented prior), in nats, and for the four structures whose mclust step is the posterior
mode, the log-likelihoods' relative difference.
"""

import sys
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from test_mclust_map import EXACT, MCLUSTS_TEN, OPTIONS, REFERENCE, log_posterior_at  # noqa: E402

import gmm_ppl as gp  # noqa: E402


def main():
    lines = [
        "# gmm_ppl's MAP-EM against mclust's, under mclust's default prior, from mclust's start",
        "",
        f"Written by `tests/mclust/map_agreement.py`; mclust {REFERENCE['mclust_version']}, priorControl(); "
        "gmm_ppl's EM to a change of 1e-13 per row. Each cell: gmm_ppl's log posterior less that of mclust's "
        "fit (nats, by SciPy under the documented prior); 0 where they agree to 1e-6 nats. For "
        f"{', '.join(EXACT)}, whose mclust step is the posterior mode, the log-likelihoods' relative "
        "difference follows in brackets. NA where mclust has no fit.",
    ]
    for name in ("old_faithful", "diabetes"):
        x = np.asarray(gp.datasets.load(name), np.float64)
        sel = gp.select_model(
            x, range(1, 10), MCLUSTS_TEN, prior="default", init="mclust", tol=1e-13, max_iter=20000, **OPTIONS
        )
        lines += ["", f"## {name}", "", "| K | " + " | ".join(MCLUSTS_TEN) + " |", "|---" * 11 + "|"]
        for k in range(1, 10):
            cells = []
            for code in MCLUSTS_TEN:
                entry = next(e for e in REFERENCE["fits"] if (e["data"], e["structure"], e["k"]) == (name, code, k))
                if "log_likelihood" not in entry:
                    cells.append("NA")
                    continue
                fit = sel.fits[code, k]
                with jax.enable_x64(True):
                    gap = float(fit.objective) * len(x) - log_posterior_at(entry, x, code)
                cell = "0" if abs(gap) <= 1e-6 else f"{gap:+.3g}"
                if code in EXACT:
                    rel = (float(fit.log_likelihood) * len(x) - entry["log_likelihood"]) / abs(entry["log_likelihood"])
                    cell += f" ({rel:+.0e})"
                cells.append(cell)
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
    (HERE / "map_agreement.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
