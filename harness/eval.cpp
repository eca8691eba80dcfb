#include "harness/eval.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <tuple>

#include "core/check.h"
#include "models/batch.h"
#include "models/kernels/attention_score.h"
#include "models/kernels/position.h"
#include "models/transformer.h"
#include "results/metrics.h"

namespace lb {

// ---- one attention row ----------------------------------------------------------------------

int64_t mass_support(const float* p, int64_t n, double fraction) {
  double total = 0.0;
  for (int64_t j = 0; j < n; ++j) total += p[j];
  double need = fraction * total * (1.0 - 1e-6);  // float sums of a "whole" row wobble
  if (need <= 0.0) return 0;
  // Quickselect on the weights: take the heavier side whole while it is not enough.
  std::vector<float> w;
  w.reserve(n);
  for (int64_t j = 0; j < n; ++j) {
    if (p[j] > 0.f) w.push_back(p[j]);
  }
  int64_t count = 0;
  size_t lo = 0, hi = w.size();
  while (lo < hi) {
    const float pivot = w[lo + (hi - lo) / 2];
    // [lo, a): > pivot, [a, b): == pivot, [b, hi): < pivot
    auto mid1 = std::partition(w.begin() + lo, w.begin() + hi, [&](float x) { return x > pivot; });
    auto mid2 = std::partition(mid1, w.begin() + hi, [&](float x) { return x == pivot; });
    const size_t a = mid1 - w.begin(), b = mid2 - w.begin();
    double above = 0.0;
    for (size_t i = lo; i < a; ++i) above += w[i];
    if (above >= need) {
      hi = a;
      continue;
    }
    need -= above;
    count += static_cast<int64_t>(a - lo);
    const double eq_total = static_cast<double>(pivot) * static_cast<double>(b - a);
    if (eq_total >= need) {
      return count + static_cast<int64_t>(std::ceil(need / pivot - 1e-9));
    }
    need -= eq_total;
    count += static_cast<int64_t>(b - a);
    lo = b;
  }
  return std::max<int64_t>(count, 1);
}

RowDispersion row_dispersion(const float* p, int64_t n, bool sparse, const int32_t* rel_begin,
                             const int32_t* rel_end) {
  RowDispersion r;
  int64_t nonzero = 0;
  double h = 0.0, mx = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    const double x = p[j];
    if (x > 0.0) {
      h -= x * std::log(x);
      ++nonzero;
      mx = std::max(mx, x);
    }
  }
  r.entropy = h;
  r.entropy_norm = n > 1 ? h / std::log(static_cast<double>(n)) : 0.0;
  r.max_weight = mx;
  r.support = static_cast<double>(sparse ? nonzero : mass_support(p, n, 0.99));
  if (rel_begin != rel_end) {
    r.has_relevant = true;
    for (const int32_t* it = rel_begin; it != rel_end; ++it) {
      if (*it >= 0 && *it < n) r.relevant_mass += p[*it];
    }
  }
  return r;
}

double percentile(std::vector<float> v, double q) {
  LB_CHECK(!v.empty(), "percentile of nothing");
  std::sort(v.begin(), v.end());
  const double at = q * static_cast<double>(v.size() - 1);
  const size_t i = static_cast<size_t>(std::floor(at));
  const size_t j = std::min(i + 1, v.size() - 1);
  return v[i] + (at - static_cast<double>(i)) * (static_cast<double>(v[j]) - v[i]);
}

int64_t edit_distance(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<int64_t> prev(m + 1), cur(m + 1);
  for (size_t j = 0; j <= m; ++j) prev[j] = static_cast<int64_t>(j);
  for (size_t i = 1; i <= n; ++i) {
    cur[0] = static_cast<int64_t>(i);
    for (size_t j = 1; j <= m; ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[m];
}

// ---- one sample -----------------------------------------------------------------------------

namespace {

// Per-row records of one sample's observed positions: slot (pos − begin, layer, head).
struct RowRecords {
  int64_t begin = 0, count = 0, LH = 0;
  std::vector<RowDispersion> rows;
  std::vector<float> scale;
  std::vector<uint8_t> scaled;
  void reset(int64_t b, int64_t c, int64_t lh) {
    begin = b, count = c, LH = lh;
    rows.assign(c * lh, RowDispersion{});
    scale.assign(c * lh, 1.f);
    scaled.assign(lh, 0);
  }
};

void sum_records(const RowRecords& rec, int64_t valid, int64_t H, int64_t max_scales,
                 std::vector<DispersionSums>& out) {
  out.assign(rec.LH, DispersionSums{});
  valid = std::min(valid, rec.count);
  for (int64_t lh = 0; lh < rec.LH; ++lh) {
    DispersionSums& s = out[lh];
    for (int64_t t = 0; t < valid; ++t) {
      const RowDispersion& r = rec.rows[t * rec.LH + lh];
      ++s.rows;
      s.entropy += r.entropy, s.entropy_norm += r.entropy_norm, s.support += r.support;
      s.max_weight += r.max_weight;
      if (r.has_relevant) ++s.rows_relevant, s.relevant_mass += r.relevant_mass;
    }
    if (rec.scaled[lh] && valid > 0) {
      const int64_t stride = std::max<int64_t>(1, (valid + max_scales - 1) / max_scales);
      for (int64_t t = 0; t < valid; t += stride) s.scales.push_back(rec.scale[t * rec.LH + lh]);
    }
  }
  (void)H;
}

}  // namespace

SampleOutcome evaluate_sample(const InferenceEngine& engine, const TaskDef& task,
                              const Sample& sample, const DecodeOptions& opt) {
  const ModelConfig& c = engine.config();
  const int64_t T = sample.length(), Vo = c.num_labels, H = c.heads, LH = c.layers * c.heads;
  const bool sparse = normalizer_is_sparse(c.attention.kind);
  SampleOutcome out;
  RowRecords rec;
  AttnObserver obs = [&](const AttnRowView& v) {
    const int64_t t = v.pos - rec.begin;
    if (t < 0 || t >= rec.count) return;
    const int64_t slot = t * rec.LH + v.layer * H + v.head;
    const int32_t *rb = nullptr, *re = nullptr;
    if (v.pos < T && v.pos < static_cast<int64_t>(sample.relevant_begin.size())) {
      std::tie(rb, re) = sample.relevant(v.pos);
    }
    rec.rows[slot] = row_dispersion(v.p, v.n, sparse, rb, re);
    rec.scale[slot] = v.scale;
  };
  // Which heads are length-scaled is fixed by the config (set here, not by the observer, which
  // runs on several threads).
  const int64_t n_scaled =
      num_query_scaled_heads(c.attention.length_scale, c.position, static_cast<int>(c.heads));
  auto mark_scaled = [&] {
    for (int64_t lh = 0; lh < LH; ++lh) rec.scaled[lh] = lh % H >= H - n_scaled;
  };
  std::vector<float> logits;

  if (task.format == TaskFormat::kPerPosition) {
    int64_t first = T, last = -1;
    for (int64_t i = 0; i < T; ++i) {
      if (sample.loss_mask[i]) first = std::min(first, i), last = i;
    }
    InferenceSession s(engine, T);
    if (opt.attn_stats && last >= first) {
      rec.reset(first, last + 1 - first, LH);
      mark_scaled();
      s.observe(&obs, first, last + 1);
    }
    s.append(sample.input.data(), T, logits, 0);
    out.prompt_tokens = T;
    out.exact = true;
    for (int64_t i = 0; i < T; ++i) {
      if (!sample.loss_mask[i]) continue;
      const int32_t pred = static_cast<int32_t>(argmax(logits.data() + i * Vo, Vo));
      out.decoded.push_back(pred);
      ++out.total;
      if (pred == sample.target[i]) ++out.correct;
      else out.exact = false;
    }
    out.generated = out.decoded;
    out.edit = out.total - out.correct;
    if (opt.attn_stats && last >= first) {
      sum_records(rec, rec.count, H, opt.max_scales_per_row_set, out.attn);
    }
    return out;
  }

  // Source→target.
  const int64_t P = sample.first_target_pos + 1;  // prompt length: [bos] src [sep]
  const int64_t R1 = T - P + 1;                   // reference trg tokens + eos
  const int32_t eos = sample.target[T - 1];
  const std::vector<int32_t> ref(sample.target.begin() + (P - 1), sample.target.end());
  const int64_t max_len = static_cast<int64_t>(static_cast<double>(P) * task.gen_multiplier);
  const int64_t max_new = std::max<int64_t>(1, max_len - P);
  InferenceSession s(engine, P + std::max(max_new, R1));
  if (opt.attn_stats) {
    rec.reset(P - 1, R1, LH);
    mark_scaled();
    s.observe(&obs, P - 1, P - 1 + R1);
  }
  std::vector<int32_t>& gen = out.generated;
  int32_t next = -1;
  if (opt.draft_reference) {
    s.append(sample.input.data(), T, logits, P - 1);
    const int64_t limit = std::min(R1, max_new);
    int64_t d = 0;
    for (; d < limit; ++d) {
      const int32_t pred = static_cast<int32_t>(argmax(logits.data() + d * Vo, Vo));
      if (pred != ref[d]) {
        next = pred;
        break;
      }
      gen.push_back(pred);
    }
    if (next >= 0) s.truncate(P + d);  // keep the prefix the predictions agree with
  } else {
    s.append(sample.input.data(), P, logits);
    next = static_cast<int32_t>(argmax(logits.data(), Vo));
  }
  // Greedy continuation: `next` is the prediction at position s.length() − 1.
  while (next >= 0) {
    gen.push_back(next);
    if (next == eos || static_cast<int64_t>(gen.size()) >= max_new || next >= c.vocab_size) break;
    s.append(&next, 1, logits);
    next = static_cast<int32_t>(argmax(logits.data(), Vo));
  }
  out.prompt_tokens = P;
  const auto cut = std::find(gen.begin(), gen.end(), eos);
  out.decoded.assign(gen.begin(), cut);
  const std::vector<int32_t>& trg = sample.raw.trg;
  out.exact = out.decoded == trg;
  out.total = R1;
  for (int64_t t = 0; t < R1 && t < static_cast<int64_t>(gen.size()); ++t) {
    out.correct += gen[t] == ref[t];
  }
  out.edit = edit_distance(out.decoded, trg);
  if (opt.attn_stats) {
    sum_records(rec, static_cast<int64_t>(gen.size()), H, opt.max_scales_per_row_set, out.attn);
  }
  return out;
}

// ---- a ladder of lengths --------------------------------------------------------------------

namespace {

// The samples of `split` on `engine`; throws EvalInterrupted when opt.stop is raised (checked
// before each sample, so the samples running finish and no new one starts).
LengthResult evaluate_split(InferenceEngine& engine, const TaskDef& task, const Split& split,
                            const EvalOptions& opt, const EvalProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& c = engine.config();
  const int64_t N = opt.samples, LH = c.layers * c.heads;
  std::vector<SampleOutcome> outcomes(N);
  // Positions a sample may reach (prompt + decoding), for the memory estimate; with RoPE every
  // sample is measured, since the table must be built before the parallel region.
  const double mult = std::max(1.0, task.gen_multiplier);
  int64_t est_len = static_cast<int64_t>(split.get(0).length() * mult) + 2;
  if (position_encoding_rotates(c.position)) {
    for (int64_t i = 1; i < N; ++i) {
      est_len = std::max(est_len, static_cast<int64_t>(split.get(i).length() * mult) + 2);
    }
    engine.reserve_positions(est_len);
  }
  int64_t per_sample = engine.kv_bytes_per_position() * est_len;
  const int threads = omp_get_max_threads();
  const bool side_by_side = threads > 1 && N > 1 && per_sample * threads <= opt.parallel_bytes;
  std::atomic<int64_t> done{0};
  std::atomic<bool> stopped{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto one = [&](int64_t i) {
    if (opt.stop && opt.stop->load()) {
      stopped = true;
      return;
    }
    try {
      outcomes[i] = evaluate_sample(engine, task, split.get(i), opt.decode);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
    const int64_t d = ++done;
    if (progress && omp_get_thread_num() == 0) progress(split.length(), d, N);
  };
  if (side_by_side) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < N; ++i) one(i);
  } else {
    for (int64_t i = 0; i < N; ++i) one(i);
  }
  if (error) std::rethrow_exception(error);
  if (stopped) throw EvalInterrupted();
  if (progress) progress(split.length(), N, N);

  LengthResult res;
  EvalRow& e = res.eval;
  e.split = split_kind_name(opt.split);
  e.length = split.length();
  e.samples = N;
  double acc_sum = 0.0;
  std::vector<DispersionSums> sums(LH);
  for (const SampleOutcome& o : outcomes) {
    e.exact_match += o.exact;
    acc_sum += o.total > 0 ? static_cast<double>(o.correct) / o.total : 0.0;
    e.edit_distance += static_cast<double>(o.edit);
    res.generated_tokens += static_cast<int64_t>(o.generated.size());
    for (size_t lh = 0; lh < o.attn.size(); ++lh) {
      DispersionSums& s = sums[lh];
      const DispersionSums& x = o.attn[lh];
      s.rows += x.rows, s.rows_relevant += x.rows_relevant;
      s.entropy += x.entropy, s.entropy_norm += x.entropy_norm, s.support += x.support;
      s.max_weight += x.max_weight, s.relevant_mass += x.relevant_mass;
      s.scales.insert(s.scales.end(), x.scales.begin(), x.scales.end());
    }
  }
  e.exact_match /= std::max<int64_t>(1, N);
  e.token_accuracy = acc_sum / std::max<int64_t>(1, N);
  e.edit_distance /= std::max<int64_t>(1, N);
  int64_t all_rows = 0;
  for (int64_t lh = 0; lh < LH && opt.decode.attn_stats; ++lh) {
    const DispersionSums& s = sums[lh];
    AttnRow a;
    a.layer = static_cast<int>(lh / c.heads), a.head = static_cast<int>(lh % c.heads);
    a.head_kind = head_kind(c, a.head);
    a.queries = s.rows;
    const double q = std::max<int64_t>(1, s.rows);
    a.entropy = s.entropy / q, a.entropy_norm = s.entropy_norm / q, a.support = s.support / q;
    a.max_weight = s.max_weight / q;
    a.relevant_mass = s.rows_relevant > 0 ? s.relevant_mass / s.rows_relevant : 0.0;
    if (!s.scales.empty()) {
      a.scale_p05 = percentile(s.scales, 0.05);
      a.scale_p50 = percentile(s.scales, 0.50);
      a.scale_p95 = percentile(s.scales, 0.95);
    }
    res.attn.push_back(a);
    res.mean_entropy += s.entropy, res.mean_support += s.support;
    all_rows += s.rows;
  }
  res.mean_entropy /= std::max<int64_t>(1, all_rows);
  res.mean_support /= std::max<int64_t>(1, all_rows);
  e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

void require_model_fits(const Transformer& model, const TaskDef& task, const TaskParams& params) {
  const Vocab v = task_vocab(task, params);
  LB_REQUIRE(model.config().vocab_size >= v.size && model.config().num_labels >= v.num_labels,
             "model vocabulary " << model.config().vocab_size << " / labels "
                                 << model.config().num_labels << " is smaller than task '"
                                 << task.name << "' needs (" << v.size << " / " << v.num_labels
                                 << ")");
}

}  // namespace

LengthResult evaluate_length(const Transformer& model, const TaskDef& task,
                             const TaskParams& params, const EvalOptions& opt, int64_t length,
                             const EvalProgress& progress) {
  LB_REQUIRE(opt.samples >= 1, "--samples " << opt.samples << " must be >= 1");
  require_model_fits(model, task, params);
  const Split split(task, params, opt.seed, opt.split, length);
  InferenceOptions io = opt.inference;
  if (opt.kv != EvalOptions::Kv::kAuto) {
    io.kv_bf16 = opt.kv == EvalOptions::Kv::kBf16;
  } else {
    const int64_t f32_bytes =
        InferenceEngine::kv_bytes_per_position(model.config(), false) * (split.get(0).length() + 1);
    io.kv_bf16 = f32_bytes > opt.kv_f32_max_bytes;
  }
  InferenceEngine engine(model, io);
  LengthResult r = evaluate_split(engine, task, split, opt, progress);
  r.kv_bf16 = io.kv_bf16;
  return r;
}

void run_ladder(const Transformer& model, const TaskDef& task, const TaskParams& params,
                const EvalOptions& opt, const LadderCallbacks& callbacks) {
  LB_REQUIRE(opt.samples >= 1, "--samples " << opt.samples << " must be >= 1");
  const std::vector<int64_t> lengths = opt.lengths.empty() ? task.eval_lengths : opt.lengths;
  LB_REQUIRE(!lengths.empty(),
             "task '" << task.name << "' has no evaluation lengths; give --lengths");
  require_model_fits(model, task, params);
  bool skip = false;
  for (int64_t L : lengths) {
    if (callbacks.known) {
      if (const std::optional<EvalRow> row = callbacks.known(L)) {
        skip = skip || (opt.stop_at_zero && (row->skipped || row->exact_match == 0.0));
        continue;
      }
    }
    LengthResult r;
    if (skip) {
      r.eval.split = split_kind_name(opt.split);
      r.eval.length = L;
      r.eval.skipped = true;
    } else {
      r = evaluate_length(model, task, params, opt, L, callbacks.progress);
      skip = opt.stop_at_zero && r.eval.exact_match == 0.0;
    }
    if (callbacks.done) callbacks.done(r);
  }
}

std::vector<LengthResult> evaluate_ladder(const Transformer& model, const TaskDef& task,
                                          const TaskParams& params, const EvalOptions& opt,
                                          const EvalProgress& progress) {
  std::vector<LengthResult> out;
  LadderCallbacks callbacks;
  callbacks.done = [&](const LengthResult& r) { out.push_back(r); };
  callbacks.progress = progress;
  run_ladder(model, task, params, opt, callbacks);
  return out;
}

nlohmann::json to_json(const LengthResult& r) {
  nlohmann::json j = {{"length", r.eval.length},          {"split", r.eval.split},
                      {"skipped", r.eval.skipped},        {"samples", r.eval.samples},
                      {"seconds", r.eval.seconds},        {"generated_tokens", r.generated_tokens},
                      {"kv", r.kv_bf16 ? "bf16" : "f32"}, {"mean_entropy", r.mean_entropy},
                      {"mean_support", r.mean_support},   {"attn", nlohmann::json::array()}};
  for (const MetricDef* m : metrics_in(kInEvals)) j[m->name] = r.eval.*(m->eval);
  for (const AttnRow& a : r.attn) {
    nlohmann::json x = {
        {"layer", a.layer}, {"head", a.head}, {"queries", a.queries}, {"head_kind", a.head_kind}};
    for (const MetricDef* m : metrics_in(kInAttn)) {
      if (const std::optional<double> v = attn_value(*m, a)) x[m->name] = *v;
    }
    j["attn"].push_back(x);
  }
  return j;
}

std::string head_kind(const ModelConfig& c, int h) {
  const int H = static_cast<int>(c.heads);
  std::string kind = position_head_kind(c.position, h, H);
  if (h >= H - num_query_scaled_heads(c.attention.length_scale, c.position, H)) kind += "+scaled";
  return kind;
}

double teacher_forced_loss(Transformer& model, const TaskDef& task, const TaskParams& params,
                           uint64_t seed, SplitKind kind, int64_t length, int64_t samples,
                           int64_t max_attn_bytes) {
  const Split split(task, params, seed, kind, length);
  const ModelConfig& c = model.config();
  double loss_sum = 0;
  int64_t targets = 0;
  std::vector<Sample> chunk;
  int64_t chunk_bytes = 0;
  const auto flush = [&] {
    if (chunk.empty()) return;
    const Batch b = make_batch(chunk);
    if (b.n_targets > 0) {
      loss_sum += model.forward(b) * static_cast<double>(b.n_targets);
      targets += b.n_targets;
    }
    chunk.clear();
    chunk_bytes = 0;
  };
  for (int64_t i = 0; i < samples; ++i) {
    Sample s = split.get(i);
    const int64_t T = s.length();
    const int64_t bytes = c.layers * c.heads * T * T * static_cast<int64_t>(sizeof(float));
    if (!chunk.empty() && chunk_bytes + bytes > max_attn_bytes) flush();
    chunk_bytes += bytes;
    chunk.push_back(std::move(s));
  }
  flush();
  return targets > 0 ? loss_sum / static_cast<double>(targets) : 0.0;
}

}  // namespace lb
