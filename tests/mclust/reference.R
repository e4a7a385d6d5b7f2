# mclust's own fits of the data gmm_ppl ships, written to tests/mclust/reference.json for the
# test suite (which never needs R). Run from the repository root:
#
#   Rscript tests/mclust/reference.R     # Debian: apt-get install r-base-core r-cran-mclust
#
# For each data set, each structure listed in STRUCTURES and K = 1..9: mclust's fit as
# Mclust(X, G = 1:9) makes it (its default start: model-based hierarchical agglomeration
# on the SVD-transformed data, hcUse = "SVD"), with the classification that start hands to
# EM, the log-likelihood, mclust's BIC (larger is better) and the parameters.
suppressPackageStartupMessages({
  library(mclust)
  library(jsonlite)
})

STRUCTURES <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")
DATA <- list(
  old_faithful = read.csv("gmm_ppl/datasets/old_faithful.csv"),
  diabetes = read.csv("gmm_ppl/datasets/diabetes.csv")[, c("glucose", "insulin", "sspg")]
)

fits <- list()
for (name in names(DATA)) {
  x <- as.matrix(DATA[[name]])
  bic <- mclustBIC(x, G = 1:9, modelNames = STRUCTURES)
  start <- attr(bic, "initialization")$hcPairs
  for (model in STRUCTURES) {
    for (k in 1:9) {
      fit <- tryCatch(
        summary(bic, x, G = k, modelNames = model),
        error = function(e) NULL
      )
      classification <- if (k == 1) rep(1L, nrow(x)) else as.integer(hclass(start, k))
      entry <- list(
        data = name, structure = model, k = k,
        start_classification = classification,
        bic = if (is.finite(bic[as.character(k), model])) bic[as.character(k), model] else NULL
      )
      if (!is.null(fit) && is.finite(fit$loglik)) {
        entry$log_likelihood <- fit$loglik
        entry$weights <- as.numeric(fit$parameters$pro)
        entry$means <- t(fit$parameters$mean)
        entry$covariances <- lapply(seq_len(k), function(j) fit$parameters$variance$sigma[, , j])
      }
      fits[[length(fits) + 1]] <- entry
    }
  }
}
out <- list(
  mclust_version = as.character(packageVersion("mclust")),
  r_version = R.version.string,
  fits = fits
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null"), "tests/mclust/reference.json")
cat("wrote tests/mclust/reference.json:", length(fits), "fits\n")
