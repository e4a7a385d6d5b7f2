"""The ``gmm-ppl`` application: the command line, model cards, runs and their results folders.

It uses the library through its public names (``import gmm_ppl as gp``) and public modules;
the library never imports it.

  cli.py       the gmm-ppl command line (``python -m gmm_ppl``)
  cards.py     model cards: the TOML schema, strict checks, RunSpec, --fast; models/ holds the shipped ones
  tabular.py   CSV and .npy input: columns, numeric checks, missing values, standardising
  pipeline.py  one run: data, fit, NUTS, comparison, then the results folder
  outcome.py   what a run produced (Fitted, Outcome) and its JSON summary
  report.py    the results folder's files: params.json, tables, figures, report.md
  folder.py    OutputFolder: a results folder written all at once, or not at all
  words.py     words for people shared by the tables, progress lines and the report
"""
