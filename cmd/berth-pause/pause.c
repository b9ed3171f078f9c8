/* berth-pause: PID 1 of a pod sandbox. Sleeps in sigsuspend() (pause() without the race), reaps zombies on SIGCHLD and exits 0
 * on SIGINT or SIGTERM. Static, libc only. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_stop(int sig) {
  (void)sig;
  stop = 1;
}

static void on_child(int sig) {
  (void)sig;
  int saved = errno;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
    static const char v[] = "berth-pause\n";
    return write(1, v, sizeof v - 1) == (ssize_t)(sizeof v - 1) ? 0 : 1;
  }
  if (getpid() != 1) {
    static const char w[] = "berth-pause: warning: not running as PID 1\n";
    if (write(2, w, sizeof w - 1) < 0) {
    }
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) return 1;
  sa.sa_handler = on_child;
  sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  if (sigaction(SIGCHLD, &sa, NULL) != 0) return 2;
  /* Signals are delivered only inside sigsuspend(), so a SIGTERM cannot slip in between the
   * check of `stop` and the wait. */
  sigset_t block, orig;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGCHLD);
  sigprocmask(SIG_BLOCK, &block, &orig);
  while (!stop) sigsuspend(&orig);
  return 0;
}
