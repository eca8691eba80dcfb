#!/usr/bin/env bash
# Regenerates every table, figure and the report page of one results folder from its database:
#   results/regenerate.sh results/paper_cpu [LENGTHBENCH]     (default build/harness/lengthbench)
# DIR holds DIR/NAME.sqlite, NAME = the folder's name. What each file is: results/EXPERIMENTS.md.
set -euo pipefail
D=${1:?usage: results/regenerate.sh DIR [LENGTHBENCH]}
B=${2:-build/harness/lengthbench}
DB=$D/$(basename "$D").sqlite
$B table "$DB" --details > "$D/table_mean.md"                           # mean over seeds, 95% t interval
$B table "$DB" --protocol best --paper --details > "$D/table_best.md"   # best seed, paper beside it
$B table "$DB" --protocol best --paper --format latex > "$D/table_best.tex"
$B table "$DB" --format csv > "$D/table_mean.csv"                       # tidy: pandas.read_csv(path)
$B table "$DB" --metric entropy_norm > "$D/dispersion_entropy.md"       # one row per head kind
$B table "$DB" --metric support > "$D/dispersion_support.md"
rm -rf "$D/plots" "$D/paper" "$D/report"
$B plot "$DB" --out "$D/plots" > /dev/null                              # exact match vs length
$B plot "$DB" --out "$D/plots" --protocol best > /dev/null
$B plot "$DB" --out "$D/plots" --metric entropy_norm > /dev/null        # NoPE heads (the default)
$B plot "$DB" --out "$D/plots" --metric entropy_norm --heads alibi > /dev/null
$B plot "$DB" --out "$D/plots" --metric support > /dev/null
$B plot "$DB" --out "$D/plots" --metric relevant_mass > /dev/null
$B plot "$DB" --out "$D/plots" --metric loss > /dev/null                # training curves
$B report "$DB" --out "$D/report" > /dev/null
echo "regenerated $D"
