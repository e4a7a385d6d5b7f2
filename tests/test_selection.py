"""Model selection over K and covariance structure."""

import dataclasses

import jax
import matplotlib
import numpy as np
import pytest
from conftest import as_full, mclust_bic, scipy_log_joint
from scipy.special import logsumexp

import gmm_ppl as gp
from gmm_ppl import _validate, covariance, programs
from gmm_ppl.selection import _fit_grid

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def small_grid(faithful):
    return gp.select_model(faithful, n_components=[1, 2, 3], covariance_types=["EII", "VVV", "EEE"], key=0, n_init=3)


def test_table_follows_mclusts_sign_convention(small_grid, faithful):
    table = small_grid.table
    assert len(table) == 9 and set(table.covariance_type) == {"EII", "VVV", "EEE"}
    n = faithful.shape[0]
    np.testing.assert_allclose(table.bic, 2 * table.log_likelihood - table.n_parameters * np.log(n))
    np.testing.assert_allclose(table.aic, 2 * table.log_likelihood - 2 * table.n_parameters)
    assert np.all(table.icl <= table.bic + 1e-9)  # ICL adds a non-positive entropy penalty
    best = table.loc[table.bic.idxmax()]
    assert small_grid.best == (best.covariance_type, best.n_components)
    # scikit-learn's bic() is the same number with the opposite sign.
    code, k = small_grid.best
    fit = small_grid.best_fit
    gm = gp.GaussianMixture(k, covariance_type=code)
    gm.weights_, gm.means_, gm.covariances_ = fit.params
    gm.n_features_in_ = 2
    np.testing.assert_allclose(-gm.bic(faithful), best.bic, rtol=1e-9)


def test_log_likelihood_and_icl_equal_scipys(small_grid, faithful):
    """Each row's log-likelihood is SciPy's at its fit, and ICL is mclust's: BIC plus twice
    the log of each row's largest responsibility, summed (responsibilities by SciPy)."""
    table = small_grid.table.set_index(["covariance_type", "n_components"])
    for (code, k), fit in small_grid.fits.items():
        log_joint = scipy_log_joint(faithful, fit.params.weights, fit.params.means, as_full(fit.params, code))
        log_density = logsumexp(log_joint, axis=1)
        row = table.loc[(code, k)]
        rtol = 4 * np.finfo(fit.params.means.dtype).eps * len(faithful)  # a sum of N rows' round-off
        np.testing.assert_allclose(row.log_likelihood, log_density.sum(), rtol=rtol)
        classification = 2 * (log_joint.max(axis=1) - log_density).sum()
        np.testing.assert_allclose(row.icl, row.bic + classification, rtol=rtol, atol=1e-6)


def test_fits_hold_the_unpadded_parameters(small_grid, faithful):
    for (code, k), fit in small_grid.fits.items():
        assert fit.params.weights.shape == (k,) and fit.params.means.shape == (k, 2)
        np.testing.assert_allclose(fit.params.weights.sum(), 1.0)
        expected = np.mean(gp.log_likelihood(fit.params, faithful, code))
        np.testing.assert_allclose(float(fit.log_likelihood), expected, rtol=1e-9)


def test_padded_grid_equals_one_program_per_k(faithful):
    """Masked components change nothing: from the same (deterministic) starts, the padded
    grid and K-by-K fits agree."""
    kwargs = dict(n_components=[1, 2, 3], covariance_types=["VII", "EEE", "EEI"], init="hierarchical", key=0)
    padded = gp.select_model(faithful, padded=True, **kwargs).table
    per_k = gp.select_model(faithful, padded=False, **kwargs).table
    np.testing.assert_allclose(padded.log_likelihood, per_k.log_likelihood, rtol=1e-9)
    np.testing.assert_array_equal(padded.n_iter, per_k.n_iter)


def test_the_grid_run_batched_equals_the_grid_run_one_k_at_a_time(faithful):
    """The two ways ``_grid_program`` runs the K values (vmap on accelerators, lax.map on a
    CPU) fit the same models: only the order of floating-point work differs."""
    x = np.asarray(faithful, np.float64)
    args = (x, np.ones(len(x)), jax.random.key(0), [1, 2, 3], "VVV", 3, "kmeans++", 1e-3, 1e-6, 100, np.float64)
    batched = _fit_grid(*args, batched=True)
    in_turn = _fit_grid(*args, batched=False)
    for (a, term_a), (b, term_b) in zip(batched, in_turn, strict=True):
        np.testing.assert_allclose(a.restart_objectives, b.restart_objectives, rtol=1e-9)
        np.testing.assert_allclose(a.params.means, b.params.means, rtol=1e-7, atol=1e-9)
        assert int(a.n_iter) == int(b.n_iter)
        np.testing.assert_allclose(term_a, term_b, rtol=1e-7)


def _family_of(code):
    """The structures of the default grid that share ``code``'s program, as select_model groups them."""
    family = covariance.shared_family(code)
    return tuple(covariance.canonical(c) for c in covariance.DEFAULT_SELECTION if covariance.shared_family(c) == family)


# One structure per way a structure sits in its family's program (spherical held in diag,
# tied in full, an inner-iteration M-step, a closed-form one); the rest in the slow run.
IN_FAMILY_QUICK = ["VII", "EEE", "VEI", "VVE"]


@pytest.mark.parametrize("prior", [None, "default"], ids=["ml", "map"])
@pytest.mark.parametrize(
    "code",
    IN_FAMILY_QUICK
    + [pytest.param(c, marks=pytest.mark.slow) for c in covariance.DEFAULT_SELECTION if c not in IN_FAMILY_QUICK],
)
def test_a_structure_fits_in_its_familys_program_as_in_its_own(faithful, code, prior):
    """select_model fits every structure of a storage family in one program, the structure
    chosen at run time (``covariance.chosen``; spherical ones held in diagonal storage, tied
    in full), under the default prior too (MAP-EM: the chosen structure's prior). From the
    same starts, each fit equals the one of the structure's own program: parameters to
    1e-10, the same iterations, the same objective (log-likelihood, plus log prior under
    MAP) and ICL term."""
    x = np.asarray(faithful, np.float64)
    ks = [1, 2, 3]
    priors = None if prior is None else [_validate.check_prior(gp.default_prior(x, k), k, x.shape[1]) for k in ks]
    args = (x, np.ones(len(x)), jax.random.key(0), ks, code, 3, "kmeans++", 1e-8, 1e-6, 300, np.float64)
    shared = _fit_grid(*args, family=_family_of(code), priors=priors)
    own = _fit_grid(*args, priors=priors)
    for (a, term_a), (b, term_b) in zip(shared, own, strict=True):
        assert a.covariance_type == b.covariance_type == covariance.canonical(code)
        np.testing.assert_allclose(a.restart_objectives, b.restart_objectives, rtol=1e-10)
        if int(a.best_restart) == int(b.best_restart):  # restarts at one optimum (K=1) tie: either is best
            assert int(a.n_iter) == int(b.n_iter)
        for p, q in zip(jax.tree.leaves(a.restart_params), jax.tree.leaves(b.restart_params), strict=True):
            assert p.shape == q.shape  # back in the structure's own storage
            np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(term_a, term_b, rtol=1e-10)


@pytest.mark.parametrize("prior", [None, "default"], ids=["ml", "map"])
def test_the_default_grid_compiles_one_program_per_storage_family(faithful, prior):
    """mclust's 14 structures are two programs: the six diagonal and spherical ones, and the
    eight full and tied ones (was 14, one per structure: issue 28), under a prior too."""
    jax.clear_caches()
    programs.forget_all()
    sel = gp.select_model(faithful, n_components=[1, 2], key=0, n_init=2, prior=prior)
    assert len(sel.table) == 28
    assert programs.compiled_count()["select_model_grid"] == 2


def test_structures_of_no_common_family_cannot_share_a_program():
    with pytest.raises(ValueError, match="no family in common"):
        covariance.chosen(("EII", "VVV"), 0)
    assert covariance.shared(("EII", "VVI")).family == "diag"
    assert covariance.shared(("EEE", "VVE")).family == "full"
    assert covariance.shared(("EEE",)).family == "tied"


def test_singular_fits_cannot_win():
    # Integer data: a component can sit on one value of a column, its variance collapsing to
    # reg_covar and its likelihood exploding. Those fits are marked and excluded.
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=200), rng.integers(0, 3, size=200).astype(float)])
    sel = gp.select_model(x, n_components=[1, 2, 3, 4], covariance_types=["VVI"], key=0, n_init=3)
    assert sel.table.singular.any()
    assert not sel.table.set_index(["covariance_type", "n_components"]).loc[sel.best, "singular"]


def test_map_selection_grid_is_the_fits_k_by_k(faithful):
    """Under MAP, one program per structure for the whole K grid (components beyond K held at
    weight 0, without a prior) fits what fit_em fits K by K, each under default_prior(x, K),
    from the same start (mclust's, deterministic)."""
    options = dict(n_components=[1, 2, 3], covariance_types=["VVV", "EII", "VEI"], prior="default", init="mclust")
    grid = gp.select_model(faithful, **options)
    one_by_one = gp.select_model(faithful, padded=False, **options)
    for (code, k), fit in grid.fits.items():
        other = one_by_one.fits[code, k]
        assert fit.prior is not None and fit.prior.alpha.shape == (k,)
        np.testing.assert_allclose(fit.prior.scale, gp.default_prior(faithful, k).scale)
        np.testing.assert_allclose(fit.objective, other.objective, rtol=1e-10)
        for a, b in zip(fit.params, other.params, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(grid.table.bic, one_by_one.table.bic, rtol=1e-10)


def test_wide_table_is_mclusts_layout(small_grid):
    """K as rows, the structures as columns in the grid's order, each cell the long table's
    value; a singular fit is NaN (mclust's NA), not -inf."""
    wide = small_grid.wide_table()
    assert list(wide.columns) == ["EII", "VVV", "EEE"] and list(wide.index) == [1, 2, 3]
    for row in small_grid.table.itertuples():
        assert wide.loc[row.n_components, row.covariance_type] == row.bic
    assert (
        small_grid.wide_table("icl").loc[2, "VVV"]
        == small_grid.table.set_index(["covariance_type", "n_components"]).loc[("VVV", 2), "icl"]
    )
    table = small_grid.table.copy()
    table.loc[0, ["singular", "bic"]] = [True, -np.inf]  # as select_model marks a singular fit
    singular = dataclasses.replace(small_grid, table=table).wide_table()
    assert np.isnan(singular.loc[table.n_components[0], table.covariance_type[0]])
    assert np.isfinite(singular.to_numpy()).sum() == len(table) - 1


def test_plot_draws_one_curve_per_structure(small_grid):
    ax = small_grid.plot()
    assert len(ax.get_lines()) == 3 and "best" in ax.get_title()


@pytest.mark.slow
def test_finds_mclusts_model_on_the_diabetes_data(diabetes):
    """mclust 6.0.0's default search (G=1..9, 14 structures) picks VVV, G=3 on the diabetes
    data, BIC -4751.3 (mclust's sign); so does gmm_ppl's over the same 14. The same search
    on Old Faithful (EEE, G=3, BIC -2314.3) is the selection page's own example (docs/selection.md), checked in
    test_documentation.py."""
    sel = gp.select_model(diabetes, key=0, n_init=10)
    assert sel.best == ("VVV", 3)
    best = sel.table.set_index(["covariance_type", "n_components"]).loc[("VVV", 3)]
    assert abs(best.bic - (-4751.3)) <= 0.05, best.bic  # as mclust prints it: to its last digit
    assert best.bic >= mclust_bic("diabetes", "VVV", 3)  # at least mclust's own, unrounded
    # Second: VVE with K=4, whose BIC mclust puts 40 lower (-4792.6; its VVE M-step is not
    # the likelihood's, see test_mclust_reference.py).
    ranked = sel.table.sort_values("bic", ascending=False)
    second = ranked.iloc[1]
    assert (second.covariance_type, second.n_components) == ("VVE", 4)
    assert second.bic >= -4752.85, second.bic
