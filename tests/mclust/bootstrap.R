# mclust's bootstrap standard errors of a fit of Old Faithful (VVV, K = 2), written to
# tests/mclust/bootstrap.json for the test suite (which never needs R). Run from the
# repository root:
#
#   Rscript tests/mclust/bootstrap.R     # Debian: apt-get install r-base-core r-cran-mclust
#
# MclustBootstrap with 999 replicates, nonparametric ("bs") and weighted likelihood ("wlbs"):
# the fit's parameters and the replicates' standard deviations of the mixing proportions,
# means and covariances.
suppressPackageStartupMessages({
  library(mclust)
  library(jsonlite)
})

x <- as.matrix(read.csv("gmm_ppl/datasets/old_faithful.csv"))
fit <- Mclust(x, G = 2, modelNames = "VVV", verbose = FALSE)
out <- list(
  mclust_version = as.character(packageVersion("mclust")),
  r_version = R.version.string,
  weights = as.numeric(fit$parameters$pro),
  means = t(fit$parameters$mean),
  covariances = lapply(1:2, function(k) fit$parameters$variance$sigma[, , k])
)
for (type in c("bs", "wlbs")) {
  set.seed(1)
  boot <- MclustBootstrap(fit, nboot = 999, type = type, verbose = FALSE)
  se <- summary(boot, what = "se")
  out[[type]] <- list(
    n_boot = 999,
    weights = as.numeric(se$pro),
    means = t(se$mean),
    covariances = lapply(1:2, function(k) se$variance[, , k])
  )
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(17)), "tests/mclust/bootstrap.json")
cat("wrote tests/mclust/bootstrap.json\n")
