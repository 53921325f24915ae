// peak_rss OUT PROGRAM [ARGS...]: runs PROGRAM, writes its peak resident set in KiB to OUT, and
// exits as it did (128 + signal if killed).
//
// Why a process of its own: a child's ru_maxrss counts the memory it inherited at fork until
// it execs (the kernel folds the old address space's high-water mark into it), so a test that
// forks the program directly measures the test's own memory. This helper is small, so what its
// child inherits is too.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: peak_rss OUT PROGRAM [ARGS...]\n");
    return 125;
  }
  pid_t pid = fork();
  if (pid < 0) return 125;
  if (pid == 0) {
    execv(argv[2], argv + 2);
    _exit(127);
  }
  int status = 0;
  struct rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) return 125;
  }
  if (FILE* f = std::fopen(argv[1], "w")) {
    std::fprintf(f, "%ld\n", usage.ru_maxrss);
    std::fclose(f);
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
