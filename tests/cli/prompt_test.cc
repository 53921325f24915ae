// The password prompt on a real pseudo-terminal: a second Ctrl-C ends haven at once, and the
// terminal's echo, turned off for the password, is back on.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "support/fs_test_util.h"
#include "support/repo_test_util.h"

namespace haven {
namespace {

// Reads from the pty master until `want` appears or `timeout` passes.
bool wait_for_output(int master, const std::string& want, std::string& seen,
                     std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      char buf[256];
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n > 0) seen.append(buf, static_cast<size_t>(n));
    }
    if (seen.find(want) != std::string::npos) return true;
  }
  return false;
}

TEST(PasswordPrompt, ASecondCtrlCLeavesTheTerminalEchoing) {
  char tmpl[] = "/tmp/haven-prompt-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  ASSERT_TRUE(init_repo(dir + "/repo"));
  int master = -1, slave = -1;
  ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  termios t{};
  ASSERT_EQ(tcgetattr(slave, &t), 0);
  ASSERT_TRUE(t.c_lflag & ECHO);
  std::string bin = HAVEN_BINARY, repo = dir + "/repo";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setsid();
    ioctl(slave, TIOCSCTTY, 0);
    dup2(slave, 0);
    dup2(slave, 1);
    dup2(slave, 2);
    close(master);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    unsetenv("HAVEN_PASSWORD");
    unsetenv("HAVEN_PASSWORD_FILE");
    execl(bin.c_str(), bin.c_str(), "-r", repo.c_str(), "snapshots", static_cast<char*>(nullptr));
    _exit(127);
  }
  std::string seen;
  ASSERT_TRUE(wait_for_output(master, "password", seen, std::chrono::seconds(10))) << seen;
  // The prompt turns echo off (just after writing its text).
  for (int i = 0; i < 200; i++) {
    ASSERT_EQ(tcgetattr(slave, &t), 0);
    if (!(t.c_lflag & ECHO)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_FALSE(t.c_lflag & ECHO) << "the prompt did not turn echo off";
  // Two signals 5 ms apart (two pending SIGINTs would merge into one): the second ends the
  // process before the prompt, which polls every 100 ms, can notice the first.
  kill(pid, SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 130);
  ASSERT_EQ(tcgetattr(slave, &t), 0);
  EXPECT_TRUE(t.c_lflag & ECHO) << "haven left the terminal without echo";
  close(master);
  close(slave);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace haven
