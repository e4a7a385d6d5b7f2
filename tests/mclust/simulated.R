# Two simulated data sets, drawn by mclust's own sim(), and mclust's fits of them, written to
# tests/mclust/simulated_*.csv and tests/mclust/simulated.json for the test suite (which never
# needs R). Run from the repository root:
#
#   Rscript tests/mclust/simulated.R     # Debian: apt-get install r-base-core r-cran-mclust
#
# vev4: 400 rows, 4 columns, three components of one shape, their own volumes and
#       orientations (VEV);
# vve3: 300 rows, 3 columns, three components of one orientation, their own volumes and
#       shapes (VVE).
# For each set: the parameters drawn from; mclust's BIC table without a prior (14 structures)
# and with priorControl() (its ten); the classification its start hands to EM for K = 1..9;
# and for each structure and K mclust's fit from it, without a prior and (ten structures)
# with one, run to a relative change of 1e-12.
suppressPackageStartupMessages({
  library(mclust)
  library(jsonlite)
})

ALL <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")
WITH_PRIOR <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "EEV", "VEV", "VVV")
TIGHT <- emControl(tol = c(1e-12, sqrt(.Machine$double.eps)))

rotation <- function(d, seed) {
  set.seed(seed)
  qr.Q(qr(matrix(rnorm(d * d), d, d)))
}

truth <- list(
  vev4 = {
    shape <- c(6, 2, 1, 0.5)
    shape <- shape / prod(shape)^(1 / 4)
    volumes <- c(1, 2.5, 0.6)
    sigma <- array(0, c(4, 4, 3))
    for (k in 1:3) {
      o <- rotation(4, k)
      sigma[, , k] <- volumes[k] * o %*% diag(shape) %*% t(o)
    }
    list(n = 400, seed = 11, pro = c(0.4, 0.35, 0.25),
         mean = cbind(c(0, 0, 0, 0), c(4, 3, 0, 1), c(-3, 4, 2, 0)), sigma = sigma)
  },
  vve3 = {
    o <- rotation(3, 7)
    diagonals <- rbind(c(4, 1, 0.5), c(1, 3, 0.8), c(0.6, 0.6, 2))
    sigma <- array(0, c(3, 3, 3))
    for (k in 1:3) sigma[, , k] <- o %*% diag(diagonals[k, ]) %*% t(o)
    list(n = 300, seed = 12, pro = c(0.3, 0.3, 0.4),
         mean = cbind(c(0, 0, 0), c(4, 0, 2), c(0, 4, -2)), sigma = sigma)
  }
)

fit_entry <- function(fit, k, d) {
  if (is.null(fit) || is.null(fit$loglik) || !is.finite(fit$loglik)) return(list())
  sigma <- fit$parameters$variance$sigma
  list(
    log_likelihood = fit$loglik,
    weights = as.numeric(fit$parameters$pro),
    means = t(matrix(fit$parameters$mean, ncol = k)),
    covariances = lapply(seq_len(k), function(j) matrix(sigma[, , j], d))
  )
}

sets <- list()
for (name in names(truth)) {
  t <- truth[[name]]
  d <- nrow(t$mean)
  drawn <- sim("VVV", parameters = list(pro = t$pro, mean = t$mean,
                                        variance = list(modelName = "VVV", d = d, G = 3, sigma = t$sigma)),
               n = t$n, seed = t$seed)
  x <- drawn[, -1]
  colnames(x) <- paste0("x", seq_len(d))
  path <- sprintf("tests/mclust/simulated_%s.csv", name)
  text <- matrix(sprintf("%.17g", x), nrow(x))
  writeLines(c(paste(colnames(x), collapse = ","), apply(text, 1, paste, collapse = ",")), path)
  x <- as.matrix(read.csv(path))  # the rows as the tests read them
  bic <- mclustBIC(x, G = 1:9, modelNames = ALL)
  bic_prior <- mclustBIC(x, G = 1:9, modelNames = WITH_PRIOR, prior = priorControl())
  start <- attr(bic, "initialization")$hcPairs
  fits <- list()
  for (model in ALL) {
    for (k in 1:9) {
      classification <- if (k == 1) rep(1L, nrow(x)) else as.integer(hclass(start, k))
      z <- unmap(classification)
      ml <- if (k == 1) mvn(modelName = model, data = x) else
        me(modelName = model, data = x, z = z, control = TIGHT, warn = FALSE)
      entry <- list(structure = model, k = k, start_classification = classification,
                    bic = if (is.finite(bic[as.character(k), model])) bic[as.character(k), model] else NULL,
                    ml = fit_entry(ml, k, d))
      if (model %in% WITH_PRIOR) {
        map <- if (k == 1) mvn(modelName = model, data = x, prior = priorControl()) else
          me(modelName = model, data = x, z = z, prior = priorControl(), control = TIGHT, warn = FALSE)
        value <- bic_prior[as.character(k), model]
        entry$bic_prior <- if (is.finite(value)) value else NULL
        entry$map <- fit_entry(map, k, d)
      }
      fits[[length(fits) + 1]] <- entry
    }
  }
  sets[[name]] <- list(
    truth = list(weights = t$pro, means = t(t$mean), covariances = lapply(1:3, function(k) t$sigma[, , k])),
    fits = fits
  )
}
out <- list(mclust_version = as.character(packageVersion("mclust")), r_version = R.version.string, sets = sets)
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(17), null = "null"), "tests/mclust/simulated.json")
cat("wrote tests/mclust/simulated.json and", length(sets), "data sets\n")
