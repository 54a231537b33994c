/* fuzz_config.c: the --config JSON loader (cli/cli_config*.c) and config --print's round trip. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli/cli.h"
#include "fuzz_common.h"

/*
 * Input: the whole of it is the config file's text. It sits in a memfd that kiln reads by its
 * /proc/self/fd path, as `kiln run --config FILE` reads a file (nothing is written to disk).
 * The loader only stats the paths the JSON names (the seeds use ones that exist: /dev/null,
 * /tmp). When a file loads, config --print's text loaded again must print the same text: the
 * round trip the README promises. A failure gives -EINVAL with one line naming the file.
 */

#define HOST_RAM (4ULL << 30)

static int g_fd = -1;
static char g_path[32];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_fd = memfd_create("fuzz-config", MFD_CLOEXEC);
    if (g_fd < 0)
        abort();
    snprintf(g_path, sizeof(g_path), "/proc/self/fd/%d", g_fd);
    return 0;
}

static void put_file(const void *data, size_t size)
{
    if (ftruncate(g_fd, 0) < 0 || pwrite(g_fd, data, size, 0) != (ssize_t)size)
        abort();
}

/* run --config FILE: 0, or -EINVAL with one line that starts with the file's path. */
static int load(struct cli_options *o, char *err)
{
    char a0[] = "kiln", a1[] = "run", a2[] = "--config";
    char *argv[] = {a0, a1, a2, g_path, NULL};
    int ret = cli_parse(4, argv, HOST_RAM, o, err);
    FZ_CHECK(ret == 0 || (ret == -EINVAL && err[0] && memchr(err, 0, KILN_ERRMSG_MAX)));
    FZ_CHECK(!strchr(err, '\n') || ret == 0);
    return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX] = "";
    put_file(data, size);
    int ret = load(&o, err);
    fz_result("config", ret, err);
    char *first = ret == 0 ? cli_config_print(&o) : NULL;
    /* Without a kernel the printed firmware is the default one, which may not be installed. */
    bool kernel = ret == 0 && o.kernel;
    cli_options_free(&o);
    if (!first)
        return 0;
    put_file(first, strlen(first));
    ret = load(&o, err);
    FZ_CHECK(ret == 0 || !kernel);
    char *second = ret == 0 ? cli_config_print(&o) : NULL;
    FZ_CHECK(ret != 0 || (second && strcmp(first, second) == 0));
    cli_options_free(&o);
    free(first);
    free(second);
    return 0;
}
