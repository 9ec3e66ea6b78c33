// The progress line draws on a terminal (a pseudo-terminal here) and writes nothing anywhere else.
#include "terminal/progress_line.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <pty.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace pacsgw::terminal {
namespace {

std::string readAll(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

TEST(ProgressLine, WritesNothingWhenNotOnATerminal) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  {
    ProgressLine line("encrypt", "files", 3, file);
    EXPECT_FALSE(line.active());
    for (std::size_t i = 1; i <= 3; ++i) line.update(i, 1e6 * static_cast<double>(i));
  }
  EXPECT_EQ(std::ftell(file), 0);
  std::fclose(file);
}

TEST(ProgressLine, DrawsItemsRateAndEtaOnATerminal) {
  int master = -1, slave = -1;
  ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  std::FILE* out = ::fdopen(slave, "w");
  ASSERT_NE(out, nullptr);
  {
    ProgressLine line("encrypt", "files", 4, out);
    EXPECT_TRUE(line.active());
    line.update(1, 2e6, "study 1/2, ");  // the first drawing is never throttled
    line.update(4, 8e6);                 // nor the last
  }
  std::fclose(out);
  ::fcntl(master, F_SETFL, O_NONBLOCK);
  const std::string text = readAll(master);
  ::close(master);
  EXPECT_NE(text.find("\rencrypt: study 1/2, 1/4 files, "), std::string::npos) << text;
  EXPECT_NE(text.find("\rencrypt: 4/4 files, "), std::string::npos) << text;
  EXPECT_NE(text.find(" MB/s, ETA "), std::string::npos) << text;
  EXPECT_NE(text.find("ETA 0:00"), std::string::npos) << text;  // nothing left after the last item
  // The line ends once: the terminal turns "\n" into "\r\n".
  ASSERT_GE(text.size(), 2u);
  EXPECT_EQ(text.substr(text.size() - 2), "\r\n") << text;
}

TEST(ProgressLine, FormatsDurations) {
  EXPECT_EQ(ProgressLine::formatDuration(0), "0:00");
  EXPECT_EQ(ProgressLine::formatDuration(75), "1:15");
  EXPECT_EQ(ProgressLine::formatDuration(3725), "1:02:05");
}

}  // namespace
}  // namespace pacsgw::terminal
