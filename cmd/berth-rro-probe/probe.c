/* berth-rro-probe PATH...
 *
 * For each PATH, tries to create (and then removes) a file in it and prints one line:
 *   "<PATH> EROFS"          the write failed with EROFS (read-only file system)
 *   "<PATH> WRITABLE"       the write succeeded
 *   "<PATH> ERROR <errno> <message>"
 * Exits 0 when every path was checked (whatever the answer), 2 on usage errors or other errors.
 * It is linked statically so that it can be the only file of a container's root file system. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  int status = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: %s PATH...\n", argv[0]);
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    char file[4096];
    if (snprintf(file, sizeof file, "%s/.berth-rro-probe", argv[i]) >= (int)sizeof file) {
      printf("%s ERROR %d %s\n", argv[i], ENAMETOOLONG, strerror(ENAMETOOLONG));
      status = 2;
      continue;
    }
    int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd >= 0) {
      close(fd);
      unlink(file);
      printf("%s WRITABLE\n", argv[i]);
    } else if (errno == EROFS) {
      printf("%s EROFS\n", argv[i]);
    } else {
      int e = errno;
      printf("%s ERROR %d %s\n", argv[i], e, strerror(e));
      status = 2;
    }
  }
  fflush(stdout);
  return status;
}
