// The researcher-facing CLI through the binary: --set overrides (harness/overrides.h) on run,
// train, eval and bench; in-process checks of the path rules.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/check.h"
#include "harness/overrides.h"
#include "tools/attention_map.h"
#include "tools/svg_plot.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct CliResult {
  int status = -1;
  std::string out;  // stdout and stderr together
};

// env: assignments (NAME=value ...) put before the binary, or empty.
CliResult cli(const std::string& args, const std::string& env = "") {
  CliResult r;
  FILE* f = popen((env + " '" + std::string(LB_BINARY) + "' " + args + " 2>&1").c_str(), "r");
  REQUIRE(f);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
  const int st = pclose(f);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string smoke() { return std::string(LB_SOURCE_DIR) + "/harness/suites/smoke.json"; }

int count_lines_with(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("lb_cli_test_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST_CASE("--set paths: dotted keys, list entries by name or index, JSON or string values") {
  json doc = json::parse(R"({"model": {"preset": "tiny"}, "tasks": ["copy", {"task": "sort"}],
                             "attention": ["softmax"], "seeds": [0]})");
  lb::apply_overrides(
      doc, {"model.hidden=128", "tasks.copy.train.task_params.seq_len=24", "tasks.1.train.steps=7",
            "seeds=[0,1,2]", "attention.0=entmax", "train.lr=1e-3"});
  CHECK(doc["model"]["hidden"] == 128);
  CHECK(doc["tasks"][0] ==
        json::parse(R"({"task": "copy", "train": {"task_params": {"seq_len": 24}}})"));
  CHECK(doc["tasks"][1]["train"]["steps"] == 7);
  CHECK(doc["seeds"] == json::array({0, 1, 2}));
  CHECK(doc["attention"][0] == "entmax");
  CHECK(doc["train"]["lr"].get<double>() == doctest::Approx(1e-3));
  // Bad paths name the --set and what exists.
  CHECK_THROWS_WITH_AS(lb::apply_overrides(doc, {"tasks.cpy.train.steps=3"}),
                       doctest::Contains("did you mean 'copy'"), lb::UsageError);
  CHECK_THROWS_AS(lb::apply_overrides(doc, {"tasks.5.train.steps=3"}), lb::UsageError);
  CHECK_THROWS_AS(lb::apply_overrides(doc, {"model.hidden.x=3"}), lb::UsageError);
  CHECK_THROWS_AS(lb::apply_overrides(doc, {"model.hidden"}), lb::UsageError);
  CHECK_THROWS_AS(lb::apply_overrides(doc, {"model..hidden=3"}), lb::UsageError);
}

TEST_CASE("run --set: changes the grid, validated like the file, exit 2 with did-you-mean") {
  const auto base = cli("run '" + smoke() + "' --dry-run --threads 1");
  REQUIRE(base.status == 0);
  CHECK(count_lines_with(base.out, " TFLOP\n") == 4);  // one line per run
  const auto more = cli("run '" + smoke() +
                        "' --dry-run --threads 1 --set 'seeds=[0,1,2]' --set "
                        "attention=softmax");
  REQUIRE(more.status == 0);
  CHECK(count_lines_with(more.out, "/s2  ") == 1);
  CHECK(count_lines_with(more.out, " TFLOP\n") == 3);
  const auto wide = cli("run '" + smoke() + "' --dry-run --set model.hidden=48");
  CHECK(wide.status == 0);
  CHECK(wide.out.find("C48H") != std::string::npos);
  const auto typo = cli("run '" + smoke() + "' --dry-run --set model.hiden=48");
  CHECK(typo.status == 2);
  CHECK(typo.out.find("did you mean 'suite /model/hidden'") != std::string::npos);
  CHECK(typo.out.find("--set model.hiden=48") != std::string::npos);
  const auto task = cli("run '" + smoke() + "' --dry-run --set tasks.cpy.train.steps=3");
  CHECK(task.status == 2);
  CHECK(task.out.find("did you mean 'copy'") != std::string::npos);
  const auto slurm = cli("slurm '" + smoke() + "' --shards 2 --set \"model.attention=it's\"");
  CHECK(slurm.status == 2);  // validated before a script is written
  const auto script = cli("slurm '" + smoke() + "' --shards 2 --set train.steps=5");
  REQUIRE(script.status == 0);
  CHECK(script.out.find(" --set 'train.steps=5' || rc=$?") != std::string::npos);
  const auto bad = cli("run '" + smoke() + "' --dry-run --set train.steps=-1");
  CHECK(bad.status == 2);
  CHECK(bad.out.find("/train/steps") != std::string::npos);
}

TEST_CASE("run --set is recorded in the run's stored config") {
  const fs::path d = fresh_dir("run_set");
  const std::string db = (d / "r.sqlite").string();
  const auto r = cli("run '" + smoke() + "' --db '" + db +
                     "' --threads 1 --filter softmax/.*/s0 "
                     "--set train.steps=6 --set train.checkpoint_every=0 --set select.every=0 "
                     "--set tasks.copy.train.task_params.seq_len=10 --set 'eval.lengths=[16]' "
                     "--progress-every 0 </dev/null");
  REQUIRE_MESSAGE(r.status == 0, r.out);
  // Without a terminal: plain progress lines (here every step), the suite's ETA, what next.
  CHECK(count_lines_with(r.out, " tok/s, elapsed ") == 6);
  CHECK(r.out.find("step 6/6, ") != std::string::npos);
  CHECK(r.out.find("[1/1] smoke/copy.v1/softmax/") != std::string::npos);
  CHECK(r.out.find("results: " + db) != std::string::npos);
  CHECK(r.out.find("lengthbench report " + db) != std::string::npos);
  // Checkpoint paths are stored relative to the database's folder and resolve from there.
  const auto ck = cli("query '" + db + "' \"SELECT path FROM checkpoints WHERE ckpt = 'best'\" --csv");
  const std::string rel = ck.out.substr(ck.out.find('\n') + 1, ck.out.rfind('\n') - ck.out.find('\n') - 1);
  CHECK(rel.rfind("r.sqlite.checkpoints/", 0) == 0);
  CHECK(fs::exists(d / rel / "config.json"));
  const auto q = cli("query '" + db + "' \"SELECT config_json FROM runs\" --csv");
  REQUIRE(q.status == 0);
  CHECK(q.out.find("\"\"steps\"\":6") != std::string::npos);
  CHECK(q.out.find("\"\"seq_len\"\":\"\"10\"\"") != std::string::npos);
}

TEST_CASE("train, eval and bench train take --set") {
  const fs::path d = fresh_dir("train_set");
  const auto t =
      cli("train --task copy --preset tiny --threads 1 --out '" + d.string() +
          "/ck' --set train.steps=3 --set train.batch=4 --set "
          "train.task_params.seq_len=8 --set train.task_params.vary_len=2 --set train.warmup=1 --set model.attention=entmax");
  REQUIRE_MESSAGE(t.status == 0, t.out);
  std::ifstream in(d / "ck" / "config.json");
  const json cfg = json::parse(in);
  CHECK(cfg["train"]["steps"] == 3);
  CHECK(cfg["model"]["attention"]["name"] == "entmax");
  CHECK(cfg["train"]["task_params"]["seq_len"] == 8);  // typed: a number, not "8"
  CHECK(cfg["step"] == 3);
  const auto typo = cli("train --preset tiny --set train.stepz=3");
  CHECK(typo.status == 2);
  CHECK(typo.out.find("did you mean '/train/steps'") != std::string::npos);
  const auto resume = cli("train --resume '" + d.string() + "/ck' --set model.hidden=8");
  CHECK(resume.status == 2);

  const auto e = cli("eval --checkpoint '" + d.string() +
                     "/ck' --threads 1 --format json --set "
                     "eval.samples=3 --set 'eval.lengths=[8,12]'");
  REQUIRE_MESSAGE(e.status == 0, e.out);
  const json ej = json::parse(e.out.substr(e.out.find('{')));
  REQUIRE(ej["lengths"].size() == 2);
  CHECK(ej["lengths"][1]["samples"] == 3);
  CHECK(cli("eval --checkpoint '" + d.string() + "/ck' --set eval.sample=3").status == 2);
  CHECK(cli("eval --checkpoint '" + d.string() + "/ck' --set model.hidden=8").status == 2);

  const auto b =
      cli("bench train --threads 1 --steps 1 --warmup-steps 0 --rounds 1 --attention "
          "softmax --set model.preset=tiny --set train.batch=2 --json");
  REQUIRE_MESSAGE(b.status == 0, b.out);
  CHECK(cli("bench train --set model.layerz=1").status == 2);
}

TEST_CASE("attention: heatmaps with exact zeros distinct from small weights, relevant marked") {
  CHECK(lb::attention_cell_colour(0.f, true) == "#ffffff");
  CHECK(lb::attention_cell_colour(1e-30f, true) != lb::attention_cell_colour(0.f, true));
  CHECK(lb::attention_cell_colour(1e-30f, true) != lb::attention_cell_colour(0.f, false));
  CHECK(lb::attention_cell_colour(0.01f, true) != lb::attention_cell_colour(0.9f, true));

  const fs::path d = fresh_dir("attention");
  const auto t = cli("train --task copy --preset tiny --threads 1 --out '" + d.string() +
                     "/ck' --set train.steps=2 --set train.batch=2 --set train.warmup=1 --set "
                     "model.attention=sparsemax --set model.init_std=1");
  REQUIRE_MESSAGE(t.status == 0, t.out);
  const auto a = cli("attention --checkpoint '" + d.string() +
                     "/ck' --task copy --length 8 "
                     "--sample 1 --out '" +
                     d.string() + "/att'");
  REQUIRE_MESSAGE(a.status == 0, a.out);
  std::ifstream js(d / "att" / "attention.json");
  const json j = json::parse(js);
  const int64_t T = j["tokens"].size();
  CHECK(T == 2 * 8 + 2);  // [bos] src [sep] trg, eos dropped from the input
  REQUIRE(j["weights"].size() == j["layers"].get<size_t>());
  int zeros = 0;
  for (const auto& layer : j["weights"]) {
    for (const auto& head : layer) {
      REQUIRE(head.size() == static_cast<size_t>(T));
      for (size_t i = 0; i < head.size(); ++i) {
        double sum = 0;
        for (const auto& w : head[i]) sum += w.get<double>(), zeros += w.get<double>() == 0.0;
        CHECK(head[i].size() == i + 1);
        CHECK(sum == doctest::Approx(1.0).epsilon(1e-4));
      }
    }
  }
  CHECK(zeros > 0);  // sparsemax leaves keys out
  std::ifstream sv(d / "att" / "attention.svg");
  const std::string svg((std::istreambuf_iterator<char>(sv)), std::istreambuf_iterator<char>());
  CHECK(svg.find("class=\"z\"") != std::string::npos);
  CHECK(svg.find("class=\"w\"") != std::string::npos);
  CHECK(svg.find("class=\"rel\"") != std::string::npos);  // copy: the aligned source token
  CHECK(svg.find("sparsemax + NAPE") != std::string::npos);
  CHECK(count_lines_with(svg, "class=\"panel\"") == j["layers"].get<int>() * j["heads"].get<int>());

  CHECK(cli("attention --checkpoint '" + d.string() + "/ck' --task cpy --length 8 --out '" +
            d.string() + "/x'")
            .status == 2);
  CHECK(cli("attention --checkpoint '" + d.string() + "/ck' --length 4000 --out '" + d.string() +
            "/x'")
            .status == 2);
}

TEST_CASE("report: one self-contained HTML page with tables, figures, curves and provenance") {
  const fs::path d = fresh_dir("report");
  const std::string db = (d / "r.sqlite").string();
  const auto r = cli("run '" + smoke() + "' --db '" + db +
                     "' --threads 1 --filter /s0 --set "
                     "train.steps=6 --set train.checkpoint_every=0 --set select.every=0 --set "
                     "'eval.lengths=[16,32]'");
  REQUIRE_MESSAGE(r.status == 0, r.out);
  const auto rep = cli("report '" + db + "' --out '" + d.string() + "/rep'");
  REQUIRE_MESSAGE(rep.status == 0, rep.out);
  std::ifstream in(d / "rep" / "index.html");
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(count_lines_with(html, "<svg") >= 4);  // accuracy, dispersion, training curves
  CHECK(html.find("<table>") != std::string::npos);
  CHECK(html.find("Training curves") != std::string::npos);
  CHECK(html.find("Checkpoint selection") != std::string::npos);
  CHECK(html.find("smoke/copy.v1/asentmax/nape/") != std::string::npos);
  CHECK(html.find("&quot;steps&quot;: 6") != std::string::npos);  // the stored config
  CHECK(html.find("src=") == std::string::npos);  // nothing to fetch: self-contained
  CHECK(html.find("href=\"http") == std::string::npos);
  CHECK(cli("report '" + db + "' --out '" + d.string() + "/rep2' --suite nope").status == 2);
  CHECK(cli("report '" + db + "'").status == 2);

  // --format on the read commands, old flags as aliases.
  const std::string sql = " \"SELECT key, status FROM runs ORDER BY key\"";
  const auto csv = cli("query '" + db + "'" + sql + " --format csv");
  CHECK(csv.status == 0);
  CHECK(csv.out == cli("query '" + db + "'" + sql + " --csv").out);
  CHECK(cli("query '" + db + "'" + sql + " --format json").out ==
        cli("query '" + db + "'" + sql + " --json").out);
  CHECK(cli("query '" + db + "'" + sql + " --format xml").status == 2);
  CHECK(cli("query '" + db + "'" + sql + " --json --format csv").status == 2);
  const auto st = cli("status '" + db + "' '" + smoke() + "' --format json");
  REQUIRE_MESSAGE(st.status == 0, st.out);
  const json sj = json::parse(st.out);
  CHECK(sj["counts"]["done"] == 2);
  CHECK(sj["counts"]["pending"] == 2);
  CHECK(sj["runs"].size() == 4);
  CHECK(cli("table '" + db + "' --format csv").out == cli("table '" + db + "' --csv").out);
  CHECK(cli("table '" + db + "' --format text").out == cli("table '" + db + "' --format md").out);
  // Figures from the same database: --ylim, training loss, PNG and PDF through rsvg-convert.
  const std::string figs = (d / "figs").string();
  const auto p = cli("plot '" + db + "' --out '" + figs + "' --ylim 20:100 --png --pdf");
  REQUIRE_MESSAGE(p.status == 0, p.out);
  CHECK(fs::file_size(figs + "/smoke.copy.test.mean.exact_match.png") > 1000);
  CHECK(fs::file_size(figs + "/smoke.copy.test.mean.exact_match.pdf") > 1000);
  const auto loss = cli("plot '" + db + "' --out '" + figs + "' --metric loss");
  REQUIRE_MESSAGE(loss.status == 0, loss.out);
  CHECK(fs::exists(figs + "/smoke.copy.loss.svg"));
  CHECK(cli("plot '" + db + "' --out '" + figs + "' --ylim 100:20").status == 2);
  const auto typo = cli("table '" + db + "' --task cpy");
  CHECK(typo.status == 2);
  CHECK(typo.out.find("did you mean 'copy'") != std::string::npos);
}

TEST_CASE("LB_PROFILE_SKIP: the first steps left out of the phase profile; a bad count exits 2") {
  const std::string train =
      "train --task copy --preset tiny --threads 1 --steps 3 --batch 4 --log-every 100";
  const auto p = cli(train, "LB_PROFILE=1 LB_PROFILE_SKIP=2");
  REQUIRE_MESSAGE(p.status == 0, p.out);
  CHECK(p.out.find("share of 1 training steps'") != std::string::npos);
  CHECK(p.out.find("after the first 2;") != std::string::npos);
  CHECK(p.out.find("  optimizer ") != std::string::npos);
  const auto all = cli(train, "LB_PROFILE=1");
  REQUIRE_MESSAGE(all.status == 0, all.out);
  CHECK(all.out.find("share of 3 training steps'") != std::string::npos);
  for (const char* bad : {"x", "-1", "2steps", "''"}) {
    CAPTURE(bad);
    const auto b = cli(train, std::string("LB_PROFILE=1 LB_PROFILE_SKIP=") + bad);
    CHECK(b.status == 2);
    CHECK(b.out.find("is not a step count (accepted: 0, 1, 2, ...)") != std::string::npos);
  }
}

TEST_CASE("--format on tasks, eval and bench; --version; --filter that matches nothing") {
  const auto tj = cli("tasks --format json");
  REQUIRE(tj.status == 0);
  CHECK(tj.out == cli("tasks --json").out);
  CHECK(json::parse(tj.out).size() >= 8);
  CHECK(cli("tasks --format csv").status == 2);
  const auto b =
      cli("bench tasks --tasks copy --lengths 64 --threads 1 --min-time 0.01 --format json");
  REQUIRE_MESSAGE(b.status == 0, b.out);
  CHECK(json::parse(b.out).size() == 1);
  const auto v = cli("--version");
  CHECK(v.status == 0);
  CHECK(v.out.find("commit ") != std::string::npos);
  CHECK(v.out.find("oneDNN ") != std::string::npos);
  CHECK(v.out.find("ISA ") != std::string::npos);
  const auto f = cli("run '" + smoke() + "' --dry-run --filter nothing-like-this");
  CHECK(f.status == 0);
  CHECK(f.out.find("warning: --filter 'nothing-like-this' matches none of the 4 runs") !=
        std::string::npos);
}

namespace {

lb::PlotFigure flip_flop_figure(std::vector<double> values) {
  lb::PlotFigure f;
  f.suite = "s", f.task = "flip_flop", f.split = "test", f.train_max_length = 64;
  const char* names[] = {"softmax", "ssmax", "entmax", "asentmax", "entmax-alpha=1.3"};
  for (size_t i = 0; i < values.size(); ++i) {
    lb::PlotSeries s;
    s.normalizer = names[i % 5], s.pos_encoding = "nape";
    s.label = s.normalizer + " / nape";
    for (int64_t L : {64, 128, 256}) s.points.push_back({L, values[i], 0.02, 3, false});
    f.series.push_back(s);
  }
  return f;
}

}  // namespace

TEST_CASE("figures for a paper: display names, caption with n, chance level, zoom, --ylim") {
  CHECK(lb::normalizer_display_name("softmax") == "softmax");
  CHECK(lb::normalizer_display_name("ssmax") == "SSMax");
  CHECK(lb::normalizer_display_name("entmax") == "1.5-entmax");
  CHECK(lb::normalizer_display_name("entmax-alpha=1.3") == "1.3-entmax");
  CHECK(lb::normalizer_display_name("asentmax") == "ASEntmax");
  CHECK(lb::normalizer_display_name("asentmax-init=near-one") == "ASEntmax (init=near-one)");

  // Near chance: the line at 50% is drawn and the legend shows display names, not ids.
  const lb::PlotFigure mid = flip_flop_figure({0.45, 0.5, 0.55, 0.6, 0.52});
  const std::string svg = lb::svg_figure(mid);
  CHECK(svg.find("<line class=\"chance\"") != std::string::npos);
  CHECK(svg.find("chance 50%") != std::string::npos);
  CHECK(svg.find(">1.3-entmax + NAPE</text>") != std::string::npos);
  CHECK(svg.find(">flip_flop: exact match (%)</text>") != std::string::npos);  // no suite id
  CHECK(svg.find("n = 3 seeds") != std::string::npos);
  CHECK(svg.find("fill-opacity=\"0.09\"") != std::string::npos);  // 5 series: fainter bands
  // All values in a narrow band: the axis zooms in (and 50% is then outside, not drawn).
  const lb::PlotFigure high = flip_flop_figure({0.9, 0.95});
  const lb::PlotLayout zoomed = lb::plot_layout(high);
  CHECK(zoomed.y_ticks.front() >= 80);
  CHECK(zoomed.y_ticks.back() == 100);
  CHECK(lb::svg_figure(high).find("class=\"chance\"") == std::string::npos);
  lb::SvgOptions full;
  full.auto_zoom = false;
  CHECK(lb::plot_layout(high, full).y_ticks.front() == 0);
  lb::SvgOptions ylim;
  ylim.ymin = 40, ylim.ymax = 100;
  const lb::PlotLayout fixed = lb::plot_layout(high, ylim);
  CHECK(fixed.y_ticks.front() == 40);
  CHECK(fixed.y_ticks.back() == 100);
}

TEST_SUITE("slow") {
  // tools/lengthbench_checkpoint.py's attention_weights (PyTorch, float64, written from the spec)
  // against the numbers `lengthbench attention` writes. Needs python3-torch (make deps-slow).
  TEST_CASE("Python attention_weights matches lengthbench attention") {
    if (std::system("python3 -c 'import torch' >/dev/null 2>&1") != 0) {
      MESSAGE("python3-torch not installed: skipped");
      return;
    }
    const fs::path d = fresh_dir("attention_py");
    REQUIRE(cli("train --task copy --preset tiny --threads 1 --out '" + d.string() +
                "/ck' --set train.steps=3 --set train.batch=2 --set train.warmup=1 --set "
                "model.attention=entmax --set model.init_std=0.5")
                .status == 0);
    REQUIRE(cli("attention --checkpoint '" + d.string() + "/ck' --length 8 --out '" + d.string() +
                "/att'")
                .status == 0);
    const std::string script = "import json, sys, torch\n"
                               "sys.path.insert(0, sys.argv[1])\n"
                               "from lengthbench_checkpoint import load, Model, attention_weights\n"
                               "cfg, sd = load(sys.argv[2])\n"
                               "a = json.load(open(sys.argv[3]))\n"
                               "ws = attention_weights(Model(cfg, sd), torch.tensor(a['tokens']))\n"
                               "d, zeros = 0.0, 0\n"
                               "for l, layer in enumerate(a['weights']):\n"
                               "  for h, rows in enumerate(layer):\n"
                               "    for i, row in enumerate(rows):\n"
                               "      p = ws[l][h][i][:i + 1].tolist()\n"
                               "      d = max(d, max(abs(x - y) for x, y in zip(p, row)))\n"
                               "      zeros += sum(1 for x, y in zip(p, row) if x == 0 and y == 0)\n"
                               "print('max diff', d, 'shared zeros', zeros)\n"
                               "sys.exit(0 if d < 1e-4 and zeros > 0 else 1)\n";
    std::ofstream(d / "check.py") << script;
    const int rc = std::system(("python3 '" + (d / "check.py").string() + "' '" + LB_SOURCE_DIR +
                                "/tools' '" + d.string() + "/ck' '" + d.string() +
                                "/att/attention.json'")
                                   .c_str());
    CHECK(rc == 0);
  }
}
