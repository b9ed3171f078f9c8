/* berth-pause: PID 1 of a pod sandbox. Sleeps in sigsuspend() (pause() without the race), reaps
 * zombies on SIGCHLD and exits 0 on SIGINT or SIGTERM. Static, libc only.
 *
 * Two ways to run:
 *   berth-pause                     inside a container the OCI runtime has set up (a sandbox
 *                                   image's rootfs holds it as /pause);
 *   berth-pause --sandbox [--prepare-net] --id ID
 *                                   berthd's own sandbox: it sets the pod's namespaces up itself
 *                                   (see sandbox_main), without the OCI runtime.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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

#if defined(__x86_64__)
#define PAUSE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define PAUSE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* An allow-list of the system calls the pause loop makes; anything else fails with EPERM. */
static void confine(void) {
#ifdef PAUSE_AUDIT_ARCH
#define ALLOW(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PAUSE_AUDIT_ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      ALLOW(__NR_rt_sigsuspend),
      ALLOW(__NR_rt_sigreturn),
      ALLOW(__NR_rt_sigprocmask),
      ALLOW(__NR_wait4),
      ALLOW(__NR_waitid),
      ALLOW(__NR_restart_syscall),
      ALLOW(__NR_exit),
      ALLOW(__NR_exit_group),
      ALLOW(__NR_close), /* the end of the set-up, reported to the waiter */
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
  };
#undef ALLOW
  struct sock_fprog prog = {(unsigned short)(sizeof filter / sizeof filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return;
  (void)prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
#endif
}

/* ready_fd: closed once the pause is set up (-1: none). */
static int pause_loop(int ready_fd) {
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
  confine();
  if (ready_fd >= 0) close(ready_fd);
  while (!stop) sigsuspend(&orig);
  _exit(0);
}

/* --- berthd's sandbox ------------------------------------------------------------------------
 *
 * berthd passes the sandbox's set-up on stdin, one "key value" line each (value: the rest of the
 * line), and reads the outcome from fd 3: "ok <waiter pid> <pause pid>\n" once the pause is forked,
 * then end of file once the pause is set up (it holds fd 3 until then); or "error <text>\n".
 * berthd may start the process before it has a sandbox for it (a spare): it then waits on stdin,
 * and end of file before any set-up ends it quietly.
 *
 *   id ID             the sandbox's id, written over the --id argument (which must be as long) so
 *                     that the command line names the sandbox
 *   root DIR          an empty directory: the pause's read-only root in a mount namespace of its
 *                     own (nothing of the host's file systems stays reachable from it)
 *   netns-new PATH    a new network namespace with loopback up, bind-mounted at PATH (an existing
 *                     file) before the mount namespace is left; with --prepare-net it was made
 *                     while the set-up was awaited
 *   netns PATH        network namespace to join
 *   userns PATH       user namespace to join (after the network namespace, before the others are
 *                     made, so that they belong to it)
 *   (neither)         the network namespace berth-pause was started in
 *   unshare ipc|uts|pid
 *   hostname NAME     (with unshare uts)
 *   sysctl KEY=VALUE  written in the new namespaces (berthd has checked they are namespaced)
 *   oom N             oom_score_adj
 *   cgroup DIR        a cgroup directory to join (one per hierarchy)
 *   user UID GID [G1,G2...]
 *
 * The process berthd starts is the waiter: it sets everything up, drops every capability and forks
 * the pause, which is PID 1 of the pod's PID namespace (with unshare pid). The waiter stays as the
 * pause's parent and exits with it; the pause is killed when the waiter dies. berthd watches the
 * waiter through a pidfd (and reaps it); its command line names the sandbox. */

#define MAX_LIST 64

struct setup {
  const char *id, *root, *netns, *netns_new, *hostname, *userns;
  int unshare_flags;
  const char *sysctls[MAX_LIST];
  int n_sysctls;
  const char *cgroups[MAX_LIST];
  int n_cgroups;
  const char *oom;
  int has_user;
  uid_t uid;
  gid_t gid;
  gid_t groups[MAX_LIST];
  int n_groups;
};

static int status_fd = 3;

static void fail(const char *what, const char *detail, int err) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "error %s%s%s: %s\n", what, detail ? " " : "", detail ? detail : "",
                   strerror(err));
  if (n > (int)sizeof buf - 1) {
    n = (int)sizeof buf - 1;
    buf[n - 1] = '\n';
  }
  if (write(status_fd, buf, (size_t)n) < 0) {
  }
  _exit(1);
}

static void write_file(const char *path, const char *data, const char *what) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail(what, path, errno);
  size_t len = strlen(data);
  ssize_t w = write(fd, data, len);
  if (w < 0 || (size_t)w != len) fail(what, path, w < 0 ? errno : EIO);
  close(fd);
}

static char *read_all(int fd) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (!buf) fail("read set-up", NULL, ENOMEM);
  for (;;) {
    if (len + 1 >= cap) {
      if (cap >= (1u << 20)) fail("read set-up", "(too large)", EFBIG);
      cap *= 2;
      buf = realloc(buf, cap);
      if (!buf) fail("read set-up", NULL, ENOMEM);
    }
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("read set-up", NULL, errno);
    if (n == 0) break;
    len += (size_t)n;
  }
  buf[len] = 0;
  return buf;
}

static unsigned long parse_id(const char *s, const char *what) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || (*end && *end != ' ' && *end != ',') || v > 0xFFFFFFFFul) fail(what, s, EINVAL);
  return v;
}

static void parse_setup(char *text, struct setup *s) {
  for (char *line = text; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    char *value = strchr(line, ' ');
    if (value) *value++ = 0;
    else value = line + strlen(line);
    if (!strcmp(line, "id")) s->id = value;
    else if (!strcmp(line, "root")) s->root = value;
    else if (!strcmp(line, "netns")) s->netns = value;
    else if (!strcmp(line, "netns-new")) s->netns_new = value;
    else if (!strcmp(line, "userns")) s->userns = value;
    else if (!strcmp(line, "hostname")) s->hostname = value;
    else if (!strcmp(line, "oom")) s->oom = value;
    else if (!strcmp(line, "unshare")) {
      if (!strcmp(value, "ipc")) s->unshare_flags |= CLONE_NEWIPC;
      else if (!strcmp(value, "uts")) s->unshare_flags |= CLONE_NEWUTS;
      else if (!strcmp(value, "pid")) s->unshare_flags |= CLONE_NEWPID;
      else fail("set-up: unknown namespace", value, EINVAL);
    } else if (!strcmp(line, "sysctl")) {
      if (s->n_sysctls == MAX_LIST) fail("set-up: too many sysctls", NULL, E2BIG);
      s->sysctls[s->n_sysctls++] = value;
    } else if (!strcmp(line, "cgroup")) {
      if (s->n_cgroups == MAX_LIST) fail("set-up: too many cgroups", NULL, E2BIG);
      s->cgroups[s->n_cgroups++] = value;
    } else if (!strcmp(line, "user")) {
      s->has_user = 1;
      s->uid = (uid_t)parse_id(value, "set-up: user");
      char *g = strchr(value, ' ');
      if (!g) fail("set-up: user without gid", value, EINVAL);
      s->gid = (gid_t)parse_id(++g, "set-up: gid");
      char *list = strchr(g, ' ');
      for (char *p = list ? list + 1 : NULL; p && *p;) {
        if (s->n_groups == MAX_LIST) fail("set-up: too many groups", NULL, E2BIG);
        s->groups[s->n_groups++] = (gid_t)parse_id(p, "set-up: group");
        p = strchr(p, ',');
        if (p) ++p;
      }
    } else if (*line) {
      fail("set-up: unknown key", line, EINVAL);
    }
    line = nl ? nl + 1 : NULL;
  }
  if (!s->root) fail("set-up: no root", NULL, EINVAL);
  if (s->netns && s->netns_new) fail("set-up: both netns and netns-new", NULL, EINVAL);
}

static void write_sysctl(const char *kv) {
  const char *eq = strchr(kv, '=');
  if (!eq || eq == kv) fail("sysctl", kv, EINVAL);
  char path[512];
  size_t n = (size_t)(eq - kv);
  if (n > sizeof path - 11) fail("sysctl", kv, ENAMETOOLONG);
  memcpy(path, "/proc/sys/", 10);
  for (size_t i = 0; i < n; ++i) path[10 + i] = kv[i] == '.' ? '/' : kv[i];
  path[10 + n] = 0;
  char what[300];
  snprintf(what, sizeof what, "sysctl %.*s", (int)n, kv);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail(what, NULL, errno);
  size_t len = strlen(eq + 1);
  ssize_t w = write(fd, eq + 1, len);
  if (w < 0 || (size_t)w != len) fail(what, NULL, w < 0 ? errno : EIO);
  close(fd);
}

/* The pause's root: `root` bind-mounted read-only as / of a mount namespace of its own; the host's
 * mounts are dropped from that namespace, so it pins none of them. */
static void enter_root(const char *root) {
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail("make / private", NULL, errno);
  if (mount(root, root, NULL, MS_BIND, NULL) != 0) fail("bind mount root", root, errno);
  if (chdir(root) != 0) fail("chdir", root, errno);
  if (syscall(SYS_pivot_root, ".", ".") != 0) fail("pivot_root", root, errno);
  if (umount2(".", MNT_DETACH) != 0) fail("detach the host's root", NULL, errno);
  if (chdir("/") != 0) fail("chdir /", NULL, errno);
  if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
    fail("remount root read-only", NULL, errno);
}

static void drop_privileges(const struct setup *s) {
  for (int cap = 0; cap <= 63; ++cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) fail("drop capability bounding set", NULL, errno);
  }
  (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (s->has_user) {
    if (setgroups((size_t)s->n_groups, s->groups) != 0) fail("setgroups", NULL, errno);
    if (setresgid(s->gid, s->gid, s->gid) != 0) fail("setgid", NULL, errno);
    if (setresuid(s->uid, s->uid, s->uid) != 0) fail("setuid", NULL, errno);
  }
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capset, &hdr, data) != 0) fail("capset", NULL, errno);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("no_new_privs", NULL, errno);
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) fail("set non-dumpable", NULL, errno);
}

/* A new network namespace for this process with loopback up: 0, or the errno with *step naming
 * what failed. */
static int new_netns(const char **step) {
  *step = "unshare(CLONE_NEWNET)";
  if (unshare(CLONE_NEWNET) != 0) return errno;
  *step = "socket in the new network namespace";
  int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sk < 0) return errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  *step = "SIOCGIFFLAGS lo";
  int err = 0;
  if (ioctl(sk, SIOCGIFFLAGS, &ifr) != 0) {
    err = errno;
  } else {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    *step = "SIOCSIFFLAGS lo up";
    if (ioctl(sk, SIOCSIFFLAGS, &ifr) != 0) err = errno;
  }
  close(sk);
  return err;
}

static int sandbox_main(int prepare_net, char *id_arg) {
  if (setsid() < 0) fail("setsid", NULL, errno);

  /* The network namespace first, while berthd makes the cgroups (or before there is a sandbox
   * at all): the set-up decides whether it is kept. */
  int host_net = -1, net_err = -1;
  const char *net_step = NULL;
  if (prepare_net) {
    host_net = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (host_net < 0) fail("open", "/proc/self/ns/net", errno);
    net_err = new_netns(&net_step);
  }

  struct setup s;
  memset(&s, 0, sizeof s);
  char *text = read_all(0);
  if (!*text) _exit(0); /* a spare nobody needed */
  parse_setup(text, &s);
  if (s.id && strcmp(s.id, id_arg) != 0) {
    size_t cap = strlen(id_arg), len = strlen(s.id);
    if (len > cap) fail("set-up: id longer than the --id argument", s.id, EINVAL);
    memset(id_arg, 0, cap);
    memcpy(id_arg, s.id, len);
  }

  for (int i = 0; i < s.n_cgroups; ++i) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/cgroup.procs", s.cgroups[i]) >= (int)sizeof path)
      fail("cgroup", s.cgroups[i], ENAMETOOLONG);
    write_file(path, "0", "join cgroup");
  }
  if (s.oom) write_file("/proc/self/oom_score_adj", s.oom, "oom_score_adj");
  if (s.netns_new) {
    if (net_err < 0) net_err = new_netns(&net_step);
    if (net_err > 0) fail("create network namespace:", net_step, net_err);
    /* Still in berthd's mount namespace: the bind mount is berthd's to see and remove. */
    if (mount("/proc/self/ns/net", s.netns_new, NULL, MS_BIND, NULL) != 0)
      fail("bind mount the network namespace at", s.netns_new, errno);
  } else if (s.netns) {
    int fd = open(s.netns, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("open network namespace", s.netns, errno);
    if (setns(fd, CLONE_NEWNET) != 0) fail("join network namespace", s.netns, errno);
    close(fd);
  } else if (net_err == 0 && setns(host_net, CLONE_NEWNET) != 0) {
    fail("return to the host's network namespace", NULL, errno);
  }
  if (host_net >= 0) close(host_net);
  if (s.userns) {
    int fd = open(s.userns, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("open user namespace", s.userns, errno);
    if (setns(fd, CLONE_NEWUSER) != 0) fail("join user namespace", s.userns, errno);
    close(fd);
  }
  if (unshare(CLONE_NEWNS | s.unshare_flags) != 0) fail("unshare", NULL, errno);
  if (s.hostname && sethostname(s.hostname, strlen(s.hostname)) != 0) fail("sethostname", s.hostname, errno);
  for (int i = 0; i < s.n_sysctls; ++i) write_sysctl(s.sysctls[i]);
  enter_root(s.root);
  drop_privileges(&s);

  pid_t pause_pid = fork();
  if (pause_pid < 0) fail("fork the pause", NULL, errno);
  if (pause_pid == 0) {
    /* The pause keeps fd 3 until it has its signal handlers and its seccomp filter: berthd
     * reads end of file once it is ready, without the waiter passing the news on. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) _exit(3);
    return pause_loop(status_fd);
  }
  char buf[64];
  int n = snprintf(buf, sizeof buf, "ok %d %d\n", (int)getpid(), (int)pause_pid);
  if (write(status_fd, buf, (size_t)n) != n) {
    kill(pause_pid, SIGKILL);
    _exit(1);
  }
  close(status_fd);
  /* The waiter: exits as the pause does. */
  for (;;) {
    int st;
    pid_t r = waitpid(pause_pid, &st, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) _exit(1);
    if (WIFEXITED(st)) _exit(WEXITSTATUS(st));
    if (WIFSIGNALED(st)) _exit(128 + WTERMSIG(st));
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
    static const char v[] = "berth-pause\n";
    return write(1, v, sizeof v - 1) == (ssize_t)(sizeof v - 1) ? 0 : 1;
  }
  if (argc > 1 && strcmp(argv[1], "--sandbox") == 0) {
    int prepare_net = 0;
    char *id_arg = NULL;
    for (int i = 2; i < argc; ++i) {
      if (!strcmp(argv[i], "--prepare-net")) prepare_net = 1;
      else if (!strcmp(argv[i], "--id") && i + 1 < argc) id_arg = argv[++i];
      else fail("usage: unknown argument", argv[i], EINVAL);
    }
    if (!id_arg) fail("usage: --sandbox needs --id", NULL, EINVAL);
    return sandbox_main(prepare_net, id_arg);
  }
  if (getpid() != 1) {
    static const char w[] = "berth-pause: warning: not running as PID 1\n";
    if (write(2, w, sizeof w - 1) < 0) {
    }
  }
  return pause_loop(-1);
}
