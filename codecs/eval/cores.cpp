// The evaluation-core table: one core per backend that names one on its pacsgw_cipher_backend(...) line
// in codecs/CMakeLists.txt (generated list).
#include "codecs/eval/cores.h"

#define PACSGW_EVAL_CORE(id, entry) \
  namespace pacsgw::eval {          \
  const EvalCoreEntry& entry();     \
  }
#include "codecs/generated/eval_core_entries.inc"
#undef PACSGW_EVAL_CORE

namespace pacsgw::eval {
namespace {

struct NamedCore {
  const char* backendId;
  const EvalCoreEntry* entry;
};

const std::vector<NamedCore>& coreTable() {
  static const std::vector<NamedCore> table{
#define PACSGW_EVAL_CORE(id, entry) {id, &entry()},
#include "codecs/generated/eval_core_entries.inc"
#undef PACSGW_EVAL_CORE
  };
  return table;
}

}  // namespace

std::vector<std::string> backendsWithCores() {
  std::vector<std::string> ids;
  for (const auto& c : coreTable()) ids.emplace_back(c.backendId);
  return ids;
}

std::unique_ptr<DeterministicCore> makeDeterministicCore(const std::string& backendId, const std::string& device) {
  for (const auto& c : coreTable())
    if (backendId == c.backendId) return c.entry->make(device);
  return nullptr;
}

void limitTensorThreads(int threads) {
  for (const auto& c : coreTable())
    if (c.entry->limitThreads != nullptr) c.entry->limitThreads(threads);
}

}  // namespace pacsgw::eval
