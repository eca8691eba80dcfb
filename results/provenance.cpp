// Provenance: what every stored run records about the binary and the machine that produced it
// (results/db.h Provenance), and the host names the run claims use.
#include <unistd.h>

#include <dnnl.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "core/version.h"
#include "results/db.h"

namespace lb {

namespace {

const char* isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "other";
  }
}

// "NAME (CPU MODEL, family F model M stepping S, N CPUs)": host names of lent or virtual machines
// are often the same ("vm"), so the processor says which machine ran a run; virtual machines often
// name every CPU alike ("Intel(R) Xeon(R) Processor"), so family, model and stepping (x86) tell
// the generations apart. Fields /proc/cpuinfo lacks are left out.
std::string machine_description() {
  std::string name, family, model, stepping;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line) && !line.empty();) {  // the first CPU
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon), value = line.substr(colon + 1);
    key.erase(key.find_last_not_of(" \t") + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    if (key == "model name") name = value;
    if (key == "cpu family") family = value;
    if (key == "model") model = value;
    if (key == "stepping") stepping = value;
  }
  std::ostringstream os;
  os << host_name() << " (" << (name.empty() ? "unknown CPU" : name) << ", ";
  if (!family.empty() && !model.empty()) {
    os << "family " << family << " model " << model;
    if (!stepping.empty()) os << " stepping " << stepping;
    os << ", ";
  }
  os << std::thread::hardware_concurrency() << " CPUs)";
  return os.str();
}

}  // namespace

std::string host_name() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return host;
}

std::string this_process_owner() { return host_name() + ":" + std::to_string(getpid()); }

Provenance Provenance::current(int threads) {
  Provenance p;
  p.git_commit = lb::git_commit();
  p.git_dirty = lb::git_dirty();
  p.lengthbench_version = lb::lengthbench_version();
  p.compiler = compiler_version();
  const dnnl_version_t* v = dnnl_version();
  std::ostringstream os;
  os << v->major << "." << v->minor << "." << v->patch << " (" << v->hash << ")";
  p.onednn_version = os.str();
  p.onednn_isa = isa_name(dnnl::get_effective_cpu_isa());
  p.host = machine_description();
  p.threads = threads;
  return p;
}

}  // namespace lb
