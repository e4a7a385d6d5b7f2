# mclust's MAP fits under its default conjugate prior (priorControl()), written to
# tests/mclust/map.json for the test suite (which never needs R). Run from the repository root:
#
#   Rscript tests/mclust/map.R     # Debian: apt-get install r-base-core r-cran-mclust
#
# For each data set, each of the ten structures mclust fits with a prior and K = 1..9:
#  - "bic": mclustBIC(X, G = 1:9, prior = priorControl()), mclust's own model selection
#    under the prior (its default start, its stopping rule);
#  - the fit run to convergence from the classification mclust's start hands to EM
#    (me(..., z = unmap(hclass(...))), tol 1e-12 on the relative change of the
#    log-likelihood): log-likelihood, mclust's log-prior, and the parameters;
#  - the prior's hyperparameters mclust's defaultPrior made for that K;
# and, per data set and structure, "msteps": mclust's MAP M-step (mstep) from the
# classification its start gives for K = 3, with the parameters it returns.
suppressPackageStartupMessages({
  library(mclust)
  library(jsonlite)
})

STRUCTURES <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "EEV", "VEV", "VVV")
DATA <- list(
  old_faithful = read.csv("gmm_ppl/datasets/old_faithful.csv"),
  diabetes = read.csv("gmm_ppl/datasets/diabetes.csv")[, c("glucose", "insulin", "sspg")]
)
PRIOR <- priorControl()
TIGHT <- emControl(tol = c(1e-12, sqrt(.Machine$double.eps)))

fits <- list()
msteps <- list()
for (name in names(DATA)) {
  x <- as.matrix(DATA[[name]])
  bic <- mclustBIC(x, G = 1:9, modelNames = STRUCTURES, prior = PRIOR)
  start <- attr(bic, "initialization")$hcPairs
  for (model in STRUCTURES) {
    for (k in 1:9) {
      classification <- if (k == 1) rep(1L, nrow(x)) else as.integer(hclass(start, k))
      prior <- defaultPrior(x, G = k, modelName = model)
      entry <- list(
        data = name, structure = model, k = k,
        start_classification = classification,
        prior = list(shrinkage = prior$shrinkage, mean = prior$mean, dof = prior$dof, scale = prior$scale),
        bic = if (is.finite(bic[as.character(k), model])) bic[as.character(k), model] else NULL
      )
      fit <- if (k == 1) {
        mvn(modelName = model, data = x, prior = PRIOR)
      } else {
        me(modelName = model, data = x, z = unmap(classification), prior = PRIOR, control = TIGHT, warn = FALSE)
      }
      if (!is.null(fit$loglik) && is.finite(fit$loglik)) {
        entry$log_likelihood <- fit$loglik
        entry$iterations <- if (k == 1) 0 else attr(fit, "info")[["iterations"]]
        entry$weights <- as.numeric(fit$parameters$pro)
        entry$means <- t(matrix(fit$parameters$mean, ncol = k))
        sigma <- fit$parameters$variance$sigma
        entry$covariances <- lapply(seq_len(k), function(j) matrix(sigma[, , j], ncol(x)))
      }
      fits[[length(fits) + 1]] <- entry
    }
    classification <- as.integer(hclass(start, 3))
    step <- mstep(modelName = model, data = x, z = unmap(classification), prior = PRIOR, warn = FALSE)
    sigma <- step$parameters$variance$sigma
    msteps[[length(msteps) + 1]] <- list(
      data = name, structure = model, k = 3L, classification = classification,
      weights = as.numeric(step$parameters$pro), means = t(step$parameters$mean),
      covariances = lapply(1:3, function(j) matrix(sigma[, , j], ncol(x)))
    )
  }
}
out <- list(
  mclust_version = as.character(packageVersion("mclust")),
  r_version = R.version.string,
  fits = fits,
  msteps = msteps
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(17), null = "null"), "tests/mclust/map.json")
cat("wrote tests/mclust/map.json:", length(fits), "fits,", length(msteps), "M-steps\n")
