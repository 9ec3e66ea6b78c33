// Key material must not reach a core dump or outlive its environment variable.
#include "gateway/process_hygiene.h"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

using namespace pacsgw;

TEST(ProcessHygiene, CoreDumpsAreDisabled) {
  // In a child, so the test runner itself stays debuggable.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string problem;
    const bool ok = gateway::disableCoreDumps(&problem);
    struct rlimit core {};
    ::getrlimit(RLIMIT_CORE, &core);
    const bool dumpable = ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0;
    ::_exit(ok && !dumpable && core.rlim_cur == 0 && core.rlim_max == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(ProcessHygiene, EnvironmentSecretIsOverwrittenAndRemoved) {
  ::setenv("PACSGW_TEST_SECRET", "00112233445566778899aabbccddeeff", 1);
  char* value = std::getenv("PACSGW_TEST_SECRET");
  ASSERT_NE(value, nullptr);
  const std::size_t length = std::strlen(value);
  gateway::clearEnvironmentSecret("PACSGW_TEST_SECRET");
  EXPECT_EQ(std::getenv("PACSGW_TEST_SECRET"), nullptr);
  // setenv's copy is not freed by unsetenv, so the old bytes can still be inspected: all zero now.
  for (std::size_t i = 0; i < length; ++i) EXPECT_EQ(value[i], '\0') << i;
  gateway::clearEnvironmentSecret("PACSGW_TEST_SECRET");  // absent: nothing to do
}
