// Registry loop tests: every task's definition, determinism, vocabulary, lengths, alignment.
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <map>

#include "core/check.h"
#include "tasks/registry.h"
#include "tasks/split.h"

using namespace lb;

namespace {

// Independent checks of each task's definition, written from the reference description, not
// from the generators. A task without a checker fails the loop test.
using Checker = std::function<void(const TaskParams&, int64_t length, const RawSample&)>;

void check_mqmtar(const TaskParams& p, int64_t L, const RawSample& s) {
  const int64_t kl = p.geti("k_len"), vl = p.geti("v_len"), nq = p.geti("num_q");
  const int64_t unit = kl + vl + 2;
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(L * p.get("num_kv") / unit), p.geti("vocab"));
  const int64_t W = L / n;
  REQUIRE(static_cast<int64_t>(s.src.size()) == n * W + nq * (1 + kl));
  REQUIRE(static_cast<int64_t>(s.trg.size()) == nq * (1 + vl));
  std::map<std::vector<int32_t>, std::vector<int32_t>> pairs;
  for (int64_t r = 0; r < n; ++r) {  // each row: fillers, k.. 1 v.. 0, fillers
    const auto row = s.src.begin() + r * W;
    const auto first = std::find_if(row, row + W, [](int32_t t) { return t != 0; });
    REQUIRE(first + unit <= row + W);
    std::vector<int32_t> key(first, first + kl), val(first + kl + 1, first + kl + 1 + vl);
    CHECK(first[kl] == 1);
    CHECK(first[unit - 1] == 0);
    CHECK(std::all_of(first + unit, row + W, [](int32_t t) { return t == 0; }));
    for (int32_t t : key) CHECK((t >= 3 && t < 3 + p.geti("abc_size")));
    CHECK(pairs.count(key) == 0);  // keys are distinct within a sample
    pairs[key] = val;
  }
  for (int64_t q = 0; q < nq; ++q) {
    const auto qa = s.src.begin() + n * W + q * (1 + kl);
    CHECK(qa[0] == 2);
    const std::vector<int32_t> key(qa + 1, qa + 1 + kl);
    REQUIRE(pairs.count(key) == 1);
    const auto ta = s.trg.begin() + q * (1 + vl);
    CHECK(ta[0] == 2);
    CHECK(std::vector<int32_t>(ta + 1, ta + 1 + vl) == pairs[key]);
  }
}

const std::map<std::string, Checker>& checkers() {
  static const std::map<std::string, Checker> k = {
      {"copy", [](const TaskParams&, int64_t L, const RawSample& s) {
         CHECK(static_cast<int64_t>(s.src.size()) == L);
         CHECK(s.trg == s.src);
       }},
      {"reverse", [](const TaskParams&, int64_t L, const RawSample& s) {
         CHECK(static_cast<int64_t>(s.src.size()) == L);
         CHECK(std::vector<int32_t>(s.src.rbegin(), s.src.rend()) == s.trg);
       }},
      {"sort", [](const TaskParams&, int64_t L, const RawSample& s) {
         CHECK(static_cast<int64_t>(s.src.size()) == L);
         auto sorted = s.src;
         std::sort(sorted.begin(), sorted.end());
         CHECK(sorted == s.trg);
       }},
      {"mqmtar", check_mqmtar},
      {"flip_flop", [](const TaskParams&, int64_t L, const RawSample& s) {
         REQUIRE(static_cast<int64_t>(s.src.size()) == 2 * (L / 2) - 1);
         CHECK(s.src.front() == 2);
         CHECK(s.src.back() == 4);
         int32_t bit = -1;
         for (size_t j = 0; j + 1 < s.src.size(); j += 2) {
           CHECK((s.src[j] == 2 || s.src[j] == 3));
           CHECK((s.src[j + 1] == 0 || s.src[j + 1] == 1));
           if (s.src[j] == 2) bit = s.src[j + 1];
         }
         CHECK(s.trg == std::vector<int32_t>{bit});
       }},
      {"local_count", [](const TaskParams& p, int64_t, const RawSample& s) {
         REQUIRE(s.trg.size() == s.src.size());
         size_t start = 0;
         for (size_t i = 0; i <= s.src.size(); ++i) {
           if (i == s.src.size() || s.src[i] != s.src[start]) {  // a run [start, i) ends
             CHECK(i - start >= 2);
             CHECK(static_cast<int64_t>(i - start) <= p.geti("max_reps"));
             for (size_t k = start; k < i; ++k) CHECK(s.trg[k] == static_cast<int32_t>(k - start));
             start = i;
           }
         }
       }},
      {"n_back", [](const TaskParams& p, int64_t L, const RawSample& s) {
         const int64_t n = p.geti("num_steps");
         REQUIRE(static_cast<int64_t>(s.src.size()) == L + 1);
         CHECK(s.src[0] == 0);
         for (int64_t i = 1; i <= L; ++i) CHECK(s.src[i] >= 1);
         for (int64_t i = 0; i <= L; ++i) CHECK(s.trg[i] == (i >= n ? s.src[i - n] : 0));
       }},
      {"parity", [](const TaskParams&, int64_t L, const RawSample& s) {
         CHECK(static_cast<int64_t>(s.src.size()) == L);
         CHECK(s.trg == std::vector<int32_t>{std::count(s.src.begin(), s.src.end(), 1) % 2 == 0});
       }},
  };
  return k;
}

// Every relevant position holds what the target needs (parity: every source bit matters).
// Long samples are checked at up to ~256 query positions.
void check_alignment(const TaskDef& task, const Sample& s) {
  const std::string name = task.name;
  const int64_t stride = std::max<int64_t>(1, s.length() / 256);
  int64_t with_relevant = 0, bad = 0;
  for (int64_t i = 0; i < s.length(); i += (i < s.first_target_pos + 8 ? 1 : stride)) {
    auto [b, e] = s.relevant(i);
    if (b == e) continue;
    ++with_relevant;
    bad += s.loss_mask[i] != 1;
    for (auto it = b; it != e; ++it) {
      if (*it < 1 || *it > i) {  // outside the sequence, or not visible to a causal query at i
        ++bad;
      } else if (name == "local_count") {
        bad += s.input[*it] != s.input[i] || i - *it != s.target[i];
      } else if (name != "parity") {
        bad += s.input[*it] != s.target[i];
      }
    }
  }
  CHECK(bad == 0);
  CHECK(with_relevant > 0);
}

}  // namespace

TEST_CASE("tasks: every registered task has a checker, a summary and valid defaults") {
  for (const auto& task : all_tasks()) {
    CAPTURE(task.name);
    CHECK(checkers().count(task.name) == 1);
    CHECK(std::string(task.summary).size() > 10);
    CHECK(!task.eval_lengths.empty());
    CHECK_NOTHROW(make_params(task, {}));
  }
}

TEST_CASE("tasks: samples follow each task's definition at training and evaluation lengths") {
  for (const auto& task : all_tasks()) {
    CAPTURE(task.name);
    const TaskParams p = make_params(task, {});
    const Vocab v = task_vocab(task, p);
    const auto [lo, hi] = train_length_range(p);
    const Checker& check = checkers().at(task.name);
    for (uint64_t seed : {0ull, 7ull, 12345ull}) {
      Split train(task, p, seed, SplitKind::kTrain, 0);
      std::vector<int64_t> seen_lengths;
      for (int64_t i = 0; i < 200; ++i) {
        const Sample s = train.get(i);
        // The nominal length is not stored; recover it from the task's src length rules.
        int64_t L = static_cast<int64_t>(s.raw.src.size());
        const std::string name = task.name;
        if (name == "n_back") L -= 1;
        if (name == "mqmtar" || name == "flip_flop" || name == "local_count") L = -1;
        if (L >= 0) {
          CHECK(L >= lo);
          CHECK(L <= hi);
          seen_lengths.push_back(L);
          check(p, L, s.raw);
        }
        for (int32_t t : s.input) CHECK((t >= 0 && t < v.size && t != v.pad));
        for (size_t k = 0; k < s.target.size(); ++k) {
          CHECK(s.target[k] < v.num_labels);
          CHECK((s.loss_mask[k] == 0 || s.target[k] >= 0));
        }
        CHECK(std::count(s.loss_mask.begin(), s.loss_mask.end(), 1) > 0);
        check_alignment(task, s);
      }
      if (!seen_lengths.empty()) {  // both ends of the range are drawn
        CHECK(*std::min_element(seen_lengths.begin(), seen_lengths.end()) == lo);
        CHECK(*std::max_element(seen_lengths.begin(), seen_lengths.end()) == hi);
      }
      for (int64_t L : {hi, 2 * hi, 257L, 1024L}) {
        CAPTURE(L);
        Split test(task, p, seed, SplitKind::kTest, L);
        for (int64_t i = 0; i < 5; ++i) {
          const Sample s = test.get(i);
          check(p, L, s.raw);
          check_alignment(task, s);
        }
      }
    }
  }
}

TEST_CASE("tasks: mqmtar, flip_flop and local_count by nominal length") {
  // These three have no fixed src length, so they are checked here through evaluation splits.
  for (const char* name : {"mqmtar", "flip_flop", "local_count"}) {
    const TaskDef& task = find_task(name);
    const TaskParams p = make_params(task, {});
    const auto [lo, hi] = train_length_range(p);
    for (int64_t L = lo; L <= hi; ++L) {
      Split s(task, p, 3, SplitKind::kValidation, L);
      checkers().at(name)(p, L, s.raw(0));
    }
  }
}

TEST_CASE("tasks: samples are deterministic and splits independent") {
  for (const auto& task : all_tasks()) {
    CAPTURE(task.name);
    const TaskParams p = make_params(task, {});
    Split a(task, p, 42, SplitKind::kTrain, 0), b(task, p, 42, SplitKind::kTrain, 0);
    Split other_seed(task, p, 43, SplitKind::kTrain, 0);
    Split test(task, p, 42, SplitKind::kTest, 64), val(task, p, 42, SplitKind::kValidation, 64);
    int same_seed = 0, differs = 0, test_val_same = 0;
    for (int64_t i = 0; i < 50; ++i) {
      same_seed += a.raw(i).src == b.raw(i).src;
      differs += a.raw(i).src != other_seed.raw(i).src;
      test_val_same += test.raw(i).src == val.raw(i).src;
    }
    CHECK(same_seed == 50);
    CHECK(differs >= 45);  // parity/flip_flop can collide only rarely
    CHECK(test_val_same <= 5);
    // Random access: sample 37 alone equals sample 37 after 0..36.
    Split fresh(task, p, 42, SplitKind::kTrain, 0);
    CHECK(fresh.raw(37).src == a.raw(37).src);
  }
}

// Pins the generators: any change to (params, seed) -> samples must bump the task version and
// update this table. The values do not depend on compiler, library or thread count.
TEST_CASE("tasks: golden fingerprints of the first samples") {
  const std::map<std::string, uint64_t> golden = {
#include "tasks/golden_fingerprints.inc"
  };
  for (const auto& task : all_tasks()) {
    CAPTURE(task.name);
    const TaskParams p = make_params(task, {});
    Split train(task, p, 1, SplitKind::kTrain, 0), test(task, p, 1, SplitKind::kTest, 256);
    uint64_t h = hash_tag(task.name);
    for (int64_t i = 0; i < 20; ++i) {
      for (const Split* s : {&train, &test}) {
        const RawSample r = s->raw(i);
        for (int32_t t : r.src) h = (h ^ static_cast<uint64_t>(t + 1)) * 0x100000001B3ull;
        for (int32_t t : r.trg) h = (h ^ static_cast<uint64_t>(t + 7)) * 0x100000001B3ull;
      }
    }
    MESSAGE(std::string(task.name) << " " << h);
    REQUIRE(golden.count(task.name) == 1);
    CHECK(golden.at(task.name) == h);
  }
}

TEST_CASE("tasks: reference sequence layouts") {
  const TaskDef& copy = find_task("copy");
  const TaskParams cp = make_params(copy, {});
  const Sample s = encode_sample(copy, cp, RawSample{{5, 0, 7}, {5, 0, 7}});
  CHECK(s.input == std::vector<int32_t>{33, 5, 0, 7, 36, 5, 0, 7});
  CHECK(s.target == std::vector<int32_t>{5, 0, 7, 36, 5, 0, 7, 34});
  CHECK(s.loss_mask == std::vector<uint8_t>{0, 0, 0, 0, 1, 1, 1, 1});
  CHECK(s.first_target_pos == 4);
  CHECK(*s.relevant(4).first == 1);  // trg[0] = src[0] at position 1
  CHECK(*s.relevant(6).first == 3);

  const TaskDef& ff = find_task("flip_flop");
  const Sample f = encode_sample(ff, make_params(ff, {}), RawSample{{2, 0, 3, 1, 4}, {0}});
  CHECK(f.input == std::vector<int32_t>{6, 2, 0, 3, 1, 4, 0});
  CHECK(f.target == std::vector<int32_t>{2, 0, 3, 1, 4, 0, 7});
  CHECK(f.loss_mask == std::vector<uint8_t>{0, 0, 0, 0, 0, 1, 1});
  CHECK(*f.relevant(5).first == 2);  // the last write's bit

  const TaskDef& nb = find_task("n_back");
  const Sample n = encode_sample(nb, make_params(nb, {}),
                                 RawSample{{0, 12, 10, 6, 13}, {0, 0, 0, 12, 10}});
  CHECK(n.input == std::vector<int32_t>{17, 0, 12, 10, 6, 13, 18});
  CHECK(n.target == std::vector<int32_t>{-1, 0, 0, 0, 12, 10, -1});
  CHECK(n.loss_mask == std::vector<uint8_t>{0, 1, 1, 1, 1, 1, 0});

  CHECK(task_vocab(find_task("mqmtar"), make_params(find_task("mqmtar"), {})).size == 265);
  CHECK(task_vocab(ff, make_params(ff, {})).size == 10);
  CHECK(task_vocab(nb, make_params(nb, {})).size == 21);
}

TEST_CASE("tasks: the reference's own mqmtar sample is accepted and aligned") {
  const TaskDef& t = find_task("mqmtar");
  const TaskParams p = make_params(t, {{"abc_size", "8"}, {"vocab", "20"}, {"num_q", "2"}});
  RawSample r{{0, 6, 5, 1, 4, 5, 0, 9, 5, 1, 6, 4, 0, 0, 0, 9, 9, 1, 7, 8, 0, 0, 7, 10, 1, 6, 5, 0,
               2, 6, 5, 2, 7, 10},
              {2, 4, 5, 2, 6, 5}};
  const Sample s = encode_sample(t, p, r);
  // trg 4 5 is the value of key 6 5 at src 4, 5 -> positions 5, 6 after bos.
  CHECK(*s.relevant(s.first_target_pos + 1).first == 5);
  CHECK(*s.relevant(s.first_target_pos + 2).first == 6);
  r.trg[1] = 5;  // a wrong answer is not a sample of the task
  CHECK_THROWS_AS(encode_sample(t, p, r), UsageError);
}

TEST_CASE("tasks: bad names and impossible parameters are refused with the reason") {
  auto message = [](auto&& fn) {
    try {
      fn();
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message([] { find_task("cpy"); }).find("did you mean 'copy'") != std::string::npos);
  const TaskDef& copy = find_task("copy");
  CHECK(message([&] { make_params(copy, {{"seq_lenn", "3"}}); }).find("did you mean 'seq_len'") !=
        std::string::npos);
  CHECK(message([&] { make_params(copy, {{"vary_len", "48"}}); }).find("vary_len 48 must be below") !=
        std::string::npos);
  CHECK(message([&] { make_params(copy, {{"vocab", "2.5"}}); }).find("must be an integer") !=
        std::string::npos);
  CHECK(message([&] { make_params(copy, {{"vocab", "x"}}); }).find("not a finite number") !=
        std::string::npos);
  CHECK(message([&] { make_params(copy, {{"vocab", "1"}}); }).find("outside") != std::string::npos);
  const TaskDef& mq = find_task("mqmtar");
  CHECK(message([&] { make_params(mq, {{"num_q", "9"}}); }).find("fewer than num_q 9") !=
        std::string::npos);
  CHECK(message([&] { make_params(mq, {{"abc_size", "50"}}); }).find("exceeds") !=
        std::string::npos);
  const TaskParams mp = make_params(mq, {});
  CHECK(message([&] { Split(mq, mp, 0, SplitKind::kTest, 20); }).find("length 20") !=
        std::string::npos);
  const TaskDef& lc = find_task("local_count");
  CHECK(message([&] { Split(lc, make_params(lc, {}), 0, SplitKind::kTest, 10); })
            .find("holds no block") != std::string::npos);
  const TaskDef& ff = find_task("flip_flop");
  CHECK(message([&] { Split(ff, make_params(ff, {}), 0, SplitKind::kTest, 3); })
            .find("below the minimum 4") != std::string::npos);
}

TEST_CASE("tasks: 65,536-token samples") {
  for (const auto& task : all_tasks()) {
    CAPTURE(task.name);
    const TaskParams p = make_params(task, {});
    Split test(task, p, 5, SplitKind::kTest, 65536);
    const Sample s = test.get(0);
    checkers().at(task.name)(p, 65536, s.raw);
    check_alignment(task, s);
  }
}

TEST_CASE("split names: parsed in one place, bad names name the option and the accepted ones") {
  CHECK(lb::parse_eval_split("test") == lb::SplitKind::kTest);
  CHECK(lb::parse_eval_split("validation") == lb::SplitKind::kValidation);
  try {
    lb::parse_eval_split("train", "--split");
    FAIL("train is not an evaluation split");
  } catch (const lb::UsageError& e) {
    CHECK(std::string(e.what()) == "--split 'train' is not one of: test, validation");
  }
}
