"""ArviZ, imported without the notice ArviZ 0.23 prints on import.

ArviZ 0.23 announces its 1.x refactor on import, to every user of gmm_ppl; the project pins
arviz < 1, so the notice asks nothing of them. Importing this module first (the package does,
before it loads a module that uses ArviZ) imports ArviZ with that one warning filtered out;
the filters are restored afterwards, so ArviZ's other warnings, and the user's, are untouched.
"""

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning)
    import arviz as az  # noqa: F401
