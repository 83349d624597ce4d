"""b. startup: from launching ``autodl search`` to its first trial starting (the first
trial's ``datetime_start`` in the Optuna journal: a worker is ready, the trial is claimed)
against the wall time of ``python -c "import torch"``.

A second reference is a script that imports torch and builds one ``torch.optim`` optimizer
(the first optimizer imports ``torch._dynamo``, about 2 s here): what any hand-written
training script pays before its first step. autodl's workers train with their own
optimizers (``autodl.train._optim``), which never import it; they warm up (first backward
pass and optimizer step) before they report ready."""

from __future__ import annotations

import sys
from typing import Any

from _suite import Row, describe, med, ratio, run_search, search_cmd, timed, trials, workdir

NAME = "startup"


def _first_trial_s() -> dict[str, float]:
    with workdir(NAME) as cwd:
        s = run_search(cwd, search_cmd("quickstart", "--trials", "1", "--epochs", "1",
                                       "--seed", "0", "--no-export"))
        first = min(t.datetime_start.timestamp() for t in trials(cwd) if t.datetime_start)
        return {"first_trial_s": first - s.launched, "wall_s": s.wall_s}


def run(quick: bool, repeats: int) -> dict[str, Any]:
    info = describe(NAME, "autodl search quickstart --trials 1 --epochs 1 (digits, default "
                    "journal + MLflow, export off) vs python -c 'import torch'", [0] * repeats,
                    "seconds to the first trial / seconds to import torch (1.0: autodl starts "
                    "a trial as fast as a script can import torch)")
    searches, imports, optims = [], [], []
    for i in range(repeats):
        imports.append(timed([sys.executable, "-c", "import torch"]))
        optims.append(timed([sys.executable, "-c", _FIRST_OPTIMIZER]))
        searches.append(_first_trial_s())
        print(f"  repeat {i}: first trial after {searches[-1]['first_trial_s']:.2f}s, "
              f"import torch {imports[-1]:.2f}s, + first optimizer {optims[-1]:.2f}s",
              flush=True)
    first = med([s["first_trial_s"] for s in searches])
    r = ratio(first, med(imports))
    rows = [Row("s: launch -> first trial | import torch", first, med(imports), r, "<= 1.25",
                r is not None and r <= 1.25),
            Row("s: launch -> first trial | import torch + build an optimizer", first,
                med(optims), ratio(first, med(optims))),
            Row("s: whole 1-trial x 1-epoch search", med([s["wall_s"] for s in searches]))]
    return {**info, "rows": rows,
            "raw": {"search": searches, "import_torch_s": imports, "first_optimizer_s": optims}}


_FIRST_OPTIMIZER = ("import torch; torch.optim.AdamW(torch.nn.Linear(4, 2).parameters())"
                    ".zero_grad()")
