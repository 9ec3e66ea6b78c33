#include "gateway/process_hygiene.h"

#include <openssl/crypto.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace pacsgw::gateway {

bool disableCoreDumps(std::string* problem) {
  bool ok = true;
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    ok = false;
    if (problem) *problem = std::string("prctl(PR_SET_DUMPABLE, 0) failed: ") + std::strerror(errno);
  }
  // A core pattern with suid_dumpable=2 would still dump non-dumpable processes to a file.
  const struct rlimit none = {0, 0};
  if (::setrlimit(RLIMIT_CORE, &none) != 0) {
    ok = false;
    if (problem) *problem = std::string("setrlimit(RLIMIT_CORE, 0) failed: ") + std::strerror(errno);
  }
  return ok;
}

void clearEnvironmentSecret(const std::string& variable) {
  if (variable.empty()) return;
  if (char* value = std::getenv(variable.c_str())) OPENSSL_cleanse(value, std::strlen(value));
  ::unsetenv(variable.c_str());
}

}  // namespace pacsgw::gateway
