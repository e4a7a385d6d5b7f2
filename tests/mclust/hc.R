# mclust's own start, written to tests/mclust/hc.json for the test suite (which never needs
# R). Run from the repository root:
#
#   Rscript tests/mclust/hc.R     # Debian: apt-get install r-base-core r-cran-mclust
#
# For each data set: what Mclust(X) starts EM from (mclust.options: hcModelName "VVV",
# hcUse "SVD"): the data as hc() transforms them (centred, scaled, rotated onto the right
# singular vectors and divided by the root singular values), the partition it starts from
# (every row alone: hc() hands hcVVV its `partition`, duplicates grouped by default, only
# when the caller gives one, and Mclust does not), the merges it makes (hcVVV, alpha = beta
# = 1), and hclass()'s classification for G = 1..9.
suppressPackageStartupMessages({
  library(mclust)
  library(jsonlite)
})

DATA <- list(
  old_faithful = read.csv("gmm_ppl/datasets/old_faithful.csv"),
  diabetes = read.csv("gmm_ppl/datasets/diabetes.csv")[, c("glucose", "insulin", "sspg")]
)
stopifnot(mclust.options("hcModelName") == "VVV", mclust.options("hcUse") == "SVD")

# A matrix as JSON rows of 17 significant digits: the transformed data to the bit, as mclust
# used them (toJSON writes at most 15).
exact <- function(m) {
  rows <- apply(m, 1, function(r) paste0("[", paste(sprintf("%.17g", r), collapse = ","), "]"))
  structure(paste0("[", paste(rows, collapse = ","), "]"), class = "json")
}

out <- list(mclust_version = as.character(packageVersion("mclust")), r_version = R.version.string, data = list())
for (name in names(DATA)) {
  x <- as.matrix(DATA[[name]])
  tree <- hc(x, modelName = "VVV", use = "SVD")
  classes <- lapply(1:9, function(g) as.integer(hclass(tree, g)))
  out$data[[name]] <- list(
    transformed = exact(as.matrix(attr(tree, "data"))),
    initial_partition = as.integer(attr(tree, "initialPartition")),
    merges = unname(t(unclass(tree)[1:2, , drop = FALSE])),
    classification = classes
  )
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, matrix = "rowmajor", json_verbatim = TRUE), "tests/mclust/hc.json")
cat("wrote tests/mclust/hc.json\n")
