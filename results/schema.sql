-- lengthbench results database, schema version 2. Applied as one transaction by results/db.cpp
-- (embedded at build time). Tables are created once; a new version adds an upgrade step in db.cpp
-- (kUpgrades) that brings an older database to the same tables, column order included (columns
-- added by ALTER TABLE go last, so they are last here too). Everything after the "@views" line is
-- dropped and recreated by every upgrade.
--
-- Version 2: runs.variant, attn_stats.head_kind, selection_evals; views per variant, skipped
-- lengths counted as 0, n and 95% intervals.
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;

-- One row per run: its canonical key, the promoted fields to group by, the whole config, and
-- the provenance of the binary and machine that produced it (a resumed run: its latest attempt).
CREATE TABLE runs(
  key TEXT PRIMARY KEY,                -- canonical: suite/task.vN/normalizer/pe/model/lr/sSEED
  suite TEXT NOT NULL,
  task TEXT NOT NULL,
  task_version INTEGER NOT NULL,
  normalizer TEXT NOT NULL,            -- name plus non-default parameters: 'entmax-alpha=1.3'
  pos_encoding TEXT NOT NULL,
  seed INTEGER NOT NULL,
  lr REAL NOT NULL,
  train_max_length INTEGER NOT NULL,   -- the longest training length ("ID" in the paper's tables)
  select_split TEXT,                   -- checkpoint/seed selection: split and length
  select_length INTEGER,
  config_json TEXT NOT NULL,
  config_hash TEXT NOT NULL,
  git_commit TEXT NOT NULL,
  git_dirty INTEGER NOT NULL,
  lengthbench_version TEXT NOT NULL,
  compiler TEXT NOT NULL,
  onednn_version TEXT NOT NULL,
  onednn_isa TEXT NOT NULL,
  threads INTEGER NOT NULL,
  host TEXT NOT NULL,
  started_at TEXT NOT NULL,            -- ISO-8601 UTC
  heartbeat_at TEXT,
  ended_at TEXT,
  attempts INTEGER NOT NULL DEFAULT 1,
  status TEXT NOT NULL CHECK(status IN ('running', 'done', 'failed')),
  error TEXT,
  variant TEXT NOT NULL DEFAULT ''     -- the suite's variants axis ('' without one); v2
) STRICT;

-- One row per log_every steps: loss, grad_norm and tokens_per_s are means over the steps since
-- the previous row; lr is the step's.
CREATE TABLE train_metrics(
  run_key TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  loss REAL NOT NULL,
  lr REAL NOT NULL,
  grad_norm REAL NOT NULL,
  tokens_per_s REAL NOT NULL,
  wall_s REAL NOT NULL,
  PRIMARY KEY(run_key, step)
) STRICT;

CREATE TABLE checkpoints(
  run_key TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
  ckpt TEXT NOT NULL,                  -- 'last', 'best', 'step-1000'
  step INTEGER NOT NULL,
  path TEXT NOT NULL,
  sha256 TEXT,
  selected_by TEXT,                    -- e.g. 'exact_match@validation/512'
  metric REAL,
  PRIMARY KEY(run_key, ckpt)
) STRICT;

CREATE TABLE evals(
  run_key TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
  ckpt TEXT NOT NULL,
  step INTEGER NOT NULL,
  split TEXT NOT NULL,                 -- 'validation' or 'test'
  length INTEGER NOT NULL,             -- nominal length L
  status TEXT NOT NULL CHECK(status IN ('ok', 'skipped')),
  samples INTEGER NOT NULL,
  exact_match REAL,                    -- fraction of sequences whose whole target is right
  token_accuracy REAL,
  edit_distance REAL,                  -- mean token-level Levenshtein distance to the target
  seconds REAL,
  PRIMARY KEY(run_key, ckpt, split, length)
) STRICT;

CREATE TABLE attn_stats(
  run_key TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
  ckpt TEXT NOT NULL,
  split TEXT NOT NULL,
  length INTEGER NOT NULL,
  layer INTEGER NOT NULL,
  head INTEGER NOT NULL,
  queries INTEGER NOT NULL,            -- attention rows averaged over
  entropy REAL,
  entropy_norm REAL,                   -- entropy / log(keys visible)
  support REAL,                        -- non-zeros (dense normalizers: keys holding 99% of the mass)
  max_weight REAL,
  relevant_mass REAL,                  -- attention mass on the task's relevant positions
  scale_p05 REAL,                      -- SSMax/ASEntmax query scale percentiles
  scale_p50 REAL,
  scale_p95 REAL,
  -- the head's position handling: 'alibi', 'nope' or 'rope', plus '+scaled' when the normalizer's
  -- query length scaling (SSMax/ASEntmax) applies to it (harness/eval.h head_kind); v2
  head_kind TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(run_key, ckpt, split, length, layer, head)
) STRICT;

-- Every checkpoint-selection evaluation of a run (v2): the model at `step` scored on the run's
-- selection split and length. The chosen one (checkpoints.ckpt = 'best') is the highest exact
-- match, then token accuracy, then the lowest loss, then the latest step (harness/run.h).
CREATE TABLE selection_evals(
  run_key TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  split TEXT NOT NULL,
  length INTEGER NOT NULL,
  samples INTEGER NOT NULL,
  exact_match REAL NOT NULL,
  token_accuracy REAL NOT NULL,
  loss REAL NOT NULL,                  -- mean target-token cross-entropy (teacher forcing), nats
  PRIMARY KEY(run_key, step)
) STRICT;

CREATE INDEX evals_by_length ON evals(split, length);

-- @views (dropped and recreated by every upgrade)

-- Evaluations with the run's grouping fields and the length as a multiple of training length.
-- exact_match_or_0: exact match with a skipped length (after an earlier 0%) counted as 0.
-- exact_match_ci_low/high: the Wilson score interval (95%, z = 1.96) of the exact match over the
-- evaluation's samples, centre (p + z²/2n) / (1 + z²/n) ± z·sqrt(p(1−p)/n + z²/4n²) / (1 + z²/n);
-- NULL when skipped.
CREATE VIEW v_evals AS
WITH w AS (
  SELECT e.*,
         CASE WHEN e.status = 'ok' AND e.samples > 0 THEN
           (e.exact_match + 1.9208 / e.samples) / (1 + 3.8416 / e.samples) END AS w_centre,
         CASE WHEN e.status = 'ok' AND e.samples > 0 THEN
           1.96 * sqrt(MAX(0.0, e.exact_match * (1 - e.exact_match)) / e.samples
                       + 0.9604 / (e.samples * e.samples)) / (1 + 3.8416 / e.samples) END AS w_half
  FROM evals e
)
SELECT r.suite, r.task, r.normalizer, r.pos_encoding, r.variant, r.lr, r.seed, r.key AS run_key,
       e.ckpt, e.step, e.split, e.length,
       CAST(e.length AS REAL) / r.train_max_length AS length_mult,
       e.status, e.samples, e.exact_match, e.token_accuracy, e.edit_distance,
       CASE WHEN e.status = 'skipped' THEN 0.0 ELSE e.exact_match END AS exact_match_or_0,
       MAX(0.0, e.w_centre - e.w_half) AS exact_match_ci_low,
       MIN(1.0, e.w_centre + e.w_half) AS exact_match_ci_high
FROM w e JOIN runs r ON r.key = e.run_key
WHERE r.status = 'done';

-- Two-sided 95% Student t quantiles t(0.975, df); df > 30 uses 1.96 + 2.37 / df (within 0.002).
CREATE VIEW v_t975(df, t) AS VALUES
  (1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (6, 2.447), (7, 2.365),
  (8, 2.306), (9, 2.262), (10, 2.228), (11, 2.201), (12, 2.179), (13, 2.160), (14, 2.145),
  (15, 2.131), (16, 2.120), (17, 2.110), (18, 2.101), (19, 2.093), (20, 2.086), (21, 2.080),
  (22, 2.074), (23, 2.069), (24, 2.064), (25, 2.060), (26, 2.056), (27, 2.052), (28, 2.048),
  (29, 2.045), (30, 2.042);

-- The paper's "mean ± sd over seeds", with n and a 95% interval: one row per (suite, task,
-- normalizer, pe, variant, lr, ckpt, split, length). Every seed counts; a skipped length is 0
-- (skipped_seeds says how many). Interval: with 2+ seeds, mean ± t(0.975, n−1)·sd/√n over seeds,
-- clipped to [0, 1]; with one run, its Wilson interval over samples (NULL when skipped).
-- samples: per length and seed (the largest, should they differ).
CREATE VIEW v_seed_summary AS
WITH g AS (
  SELECT suite, task, normalizer, pos_encoding, variant, lr, ckpt, split, length, length_mult,
         COUNT(*) AS seeds,
         SUM(status = 'skipped') AS skipped_seeds,
         MAX(samples) AS samples,
         AVG(exact_match_or_0) AS m,
         CASE WHEN COUNT(*) > 1 THEN
           sqrt(MAX(0.0, (SUM(exact_match_or_0 * exact_match_or_0)
                          - COUNT(*) * AVG(exact_match_or_0) * AVG(exact_match_or_0))
                         / (COUNT(*) - 1)))
         END AS sd,
         MAX(exact_match_ci_low) AS w_low,
         MAX(exact_match_ci_high) AS w_high,
         AVG(token_accuracy) AS token_accuracy_mean
  FROM v_evals
  GROUP BY suite, task, normalizer, pos_encoding, variant, lr, ckpt, split, length
)
SELECT g.suite, g.task, g.normalizer, g.pos_encoding, g.variant, g.lr, g.ckpt, g.split, g.length,
       g.length_mult, g.seeds, g.skipped_seeds, g.samples,
       g.m AS exact_match_mean,
       g.sd AS exact_match_sd,
       CASE WHEN g.seeds > 1
         THEN MAX(0.0, g.m - coalesce(t.t, 1.96 + 2.37 / (g.seeds - 1)) * g.sd / sqrt(g.seeds))
         ELSE g.w_low END AS exact_match_ci_low,
       CASE WHEN g.seeds > 1
         THEN MIN(1.0, g.m + coalesce(t.t, 1.96 + 2.37 / (g.seeds - 1)) * g.sd / sqrt(g.seeds))
         ELSE g.w_high END AS exact_match_ci_high,
       g.token_accuracy_mean
FROM g LEFT JOIN v_t975 t ON t.df = g.seeds - 1;

-- Every checkpoint-selection evaluation with the run's grouping fields; chosen = 1 for the step
-- whose checkpoint was evaluated (the run's 'best').
CREATE VIEW v_selection AS
SELECT r.suite, r.task, r.normalizer, r.pos_encoding, r.variant, r.lr, r.seed, r.key AS run_key,
       s.step, s.split, s.length, s.samples, s.exact_match, s.token_accuracy, s.loss,
       (s.step = (SELECT c.step FROM checkpoints c WHERE c.run_key = s.run_key AND c.ckpt = 'best'))
         AS chosen
FROM selection_evals s JOIN runs r ON r.key = s.run_key;

-- Attention statistics of finished runs with the run's grouping fields and the head's kind.
CREATE VIEW v_attn AS
SELECT r.suite, r.task, r.normalizer, r.pos_encoding, r.variant, r.lr, r.seed, r.key AS run_key,
       a.ckpt, a.split, a.length, CAST(a.length AS REAL) / r.train_max_length AS length_mult,
       a.layer, a.head, a.head_kind, a.queries, a.entropy, a.entropy_norm, a.support,
       a.max_weight, a.relevant_mass, a.scale_p05, a.scale_p50, a.scale_p95
FROM attn_stats a JOIN runs r ON r.key = a.run_key
WHERE r.status = 'done';

-- The paper's "best of seeds x learning rates": per (suite, task, normalizer, pe, variant), the
-- run with the highest exact match on its selection split and length (then token accuracy, then
-- the lower selection loss where recorded, then the key), then that run's every test evaluation.
CREATE VIEW v_best_of AS
WITH scored AS (
  SELECT r.key AS best_key,
         ROW_NUMBER() OVER (PARTITION BY r.suite, r.task, r.normalizer, r.pos_encoding, r.variant
                            ORDER BY e.exact_match DESC, e.token_accuracy DESC,
                                     coalesce((SELECT s.loss FROM selection_evals s
                                               WHERE s.run_key = r.key AND s.step = e.step), 1e300),
                                     r.key) AS best_rank
  FROM runs r JOIN evals e
    ON e.run_key = r.key AND e.split = r.select_split AND e.length = r.select_length
       AND e.ckpt = 'best'
  WHERE r.status = 'done'
)
SELECT v.suite, v.task, v.normalizer, v.pos_encoding, v.variant, v.lr, v.seed, v.run_key, v.ckpt,
       v.step, v.split, v.length, v.length_mult, v.status, v.samples, v.exact_match,
       v.token_accuracy, v.edit_distance, v.exact_match_or_0, v.exact_match_ci_low,
       v.exact_match_ci_high
FROM v_evals v JOIN scored s ON s.best_key = v.run_key
WHERE s.best_rank = 1 AND v.ckpt = 'best' AND v.split = 'test';
