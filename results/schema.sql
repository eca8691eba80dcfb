-- lengthbench results database, schema version 1. Applied as one transaction by results/db.cpp
-- (embedded at build time). A new version appends an upgrade step there; never edit a released one.
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;

-- One row per run: its canonical key, the promoted fields to group by, the whole config, and
-- the provenance of the binary and machine that produced it.
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
  error TEXT
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
  PRIMARY KEY(run_key, ckpt, split, length, layer, head)
) STRICT;

CREATE INDEX evals_by_length ON evals(split, length);

-- Evaluations with the run's grouping fields and the length as a multiple of training length.
CREATE VIEW v_evals AS
SELECT r.suite, r.task, r.normalizer, r.pos_encoding, r.lr, r.seed, r.key AS run_key,
       e.ckpt, e.step, e.split, e.length,
       CAST(e.length AS REAL) / r.train_max_length AS length_mult,
       e.status, e.samples, e.exact_match, e.token_accuracy, e.edit_distance
FROM evals e JOIN runs r ON r.key = e.run_key
WHERE r.status = 'done';

-- The paper's "mean ± sd over seeds": one row per (suite, task, normalizer, pe, lr, split, length).
CREATE VIEW v_seed_summary AS
SELECT suite, task, normalizer, pos_encoding, lr, ckpt, split, length, length_mult,
       COUNT(*) AS seeds,
       AVG(exact_match) AS exact_match_mean,
       CASE WHEN COUNT(*) > 1 THEN
         sqrt(MAX(0.0, (SUM(exact_match * exact_match) - COUNT(*) * AVG(exact_match) * AVG(exact_match))
                       / (COUNT(*) - 1)))
       END AS exact_match_sd,
       AVG(token_accuracy) AS token_accuracy_mean
FROM v_evals WHERE status = 'ok'
GROUP BY suite, task, normalizer, pos_encoding, lr, ckpt, split, length;

-- The paper's "best of seeds x learning rates": per (suite, task, normalizer, pe), the run with
-- the highest exact match on its selection split and length, then that run's every evaluation.
CREATE VIEW v_best_of AS
WITH scored AS (
  SELECT r.key AS best_key,
         ROW_NUMBER() OVER (PARTITION BY r.suite, r.task, r.normalizer, r.pos_encoding
                            ORDER BY e.exact_match DESC, e.token_accuracy DESC, r.key) AS best_rank
  FROM runs r JOIN evals e
    ON e.run_key = r.key AND e.split = r.select_split AND e.length = r.select_length
       AND e.ckpt = 'best'
  WHERE r.status = 'done'
)
SELECT v.suite, v.task, v.normalizer, v.pos_encoding, v.lr, v.seed, v.run_key, v.ckpt, v.step,
       v.split, v.length, v.length_mult, v.status, v.samples, v.exact_match, v.token_accuracy,
       v.edit_distance
FROM v_evals v JOIN scored s ON s.best_key = v.run_key
WHERE s.best_rank = 1 AND v.ckpt = 'best' AND v.split = 'test';
