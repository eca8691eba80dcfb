// The command table. A new command: its cmd_*.cpp (the build picks it up) and its declaration and
// row here.
#include "harness/command.h"

namespace lb {

int cmd_tasks(int argc, char** argv);
int cmd_gen(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_normalize(int argc, char** argv);
int cmd_query(int argc, char** argv);
int cmd_table(int argc, char** argv);
int cmd_plot(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_slurm(int argc, char** argv);
int cmd_merge(int argc, char** argv);
int cmd_upgrade(int argc, char** argv);
int cmd_status(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_logits(int argc, char** argv);
int cmd_attention(int argc, char** argv);
int cmd_report(int argc, char** argv);

const std::vector<Command>& all_commands() {
  static const std::vector<Command> kCommands = {
      {"tasks", "list the synthetic tasks, their parameters and defaults", cmd_tasks},
      {"gen", "print samples of a task (text or JSON)", cmd_gen},
      {"export", "write a dataset in the reference generator's .src/.trg format", cmd_export},
      {"bench", "benchmarks: tasks, normalizers, train, eval", cmd_bench},
      {"train", "train the Gemma-2-style decoder on a task; checkpoints in safetensors", cmd_train},
      {"eval", "evaluate a checkpoint over a ladder of lengths: exact match, attention dispersion",
       cmd_eval},
      {"logits", "logits of a checkpoint for one token sequence (training or inference engine)",
       cmd_logits},
      {"attention", "heatmaps (SVG) of one sample's attention weights per layer x head",
       cmd_attention},
      {"normalize", "attention weights of one normalizer for one row of scores", cmd_normalize},
      {"run", "run a suite of experiments into a results database (resumable, shardable)", cmd_run},
      {"slurm", "print an sbatch array script that runs a suite's shards, then merges", cmd_slurm},
      {"query", "run read-only SQL on a results database (table, CSV or JSON)", cmd_query},
      {"table", "paper-style tables (Markdown, LaTeX, CSV) from a results database", cmd_table},
      {"plot", "paper-style figures (SVG) of a metric against length from a results database",
       cmd_plot},
      {"report", "one self-contained HTML page: tables, figures, curves, provenance", cmd_report},
      {"status", "runs in a results database: done, running, failed", cmd_status},
      {"merge", "merge shard results databases into one", cmd_merge},
      {"upgrade", "bring a results database to this schema version in place (rows kept)",
       cmd_upgrade},
  };
  return kCommands;
}

}  // namespace lb
