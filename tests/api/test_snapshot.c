/* test_snapshot.c: kiln_vm_snapshot and restore_dir on real KVM: a guest goes on where it was. */
/* Every VM here has a virtio-vsock device too (flood drives no device): its state goes along. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kiln.h"

#define LINES 20000

static char tmpdir[] = "/tmp/kiln-snap.XXXXXX";
static char vsock_path[600]; /* tmpdir/v.sock: the vsock device's socket */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static char *path(const char *name)
{
    static __thread char p[600];
    snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
    return p;
}

static void config(struct kiln_config *cfg, int out_fd, const char *restore_dir)
{
    kiln_config_init(cfg);
    cfg->kernel_path = KILN_GUEST_DIR "/flood.elf";
    cfg->cmdline = "lines=20000";
    cfg->memory_bytes = 16 << 20;
    cfg->serial_out_fd = out_fd;
    cfg->timeout_ms = 120000;
    cfg->restore_dir = restore_dir;
    cfg->vsock = (struct kiln_vsock){.cid = 5, .uds_path = vsock_path};
}

struct runner {
    struct kiln_vm *vm;
    struct kiln_exit exit;
    pthread_t thread;
};

static void *run_main(void *arg)
{
    struct runner *r = arg;
    ck_assert_int_eq(kiln_vm_run(r->vm, &r->exit), 0);
    return NULL;
}

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static char *slurp(const char *p)
{
    FILE *f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    char *buf = calloc(1, 8u << 20);
    size_t n = fread(buf, 1, (8u << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* What flood prints for lines=LINES, start to end. */
static char *expected(void)
{
    char *buf = calloc(1, 8u << 20);
    size_t n = 0;
    for (int i = 0; i < LINES; i++)
        n += (size_t)sprintf(buf + n,
                             "flood %d abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU"
                             "VWXYZ\n",
                             i);
    sprintf(buf + n, "flood: done\n");
    return buf;
}

/* Boot flood, pause it part way, snapshot into tmpdir/snap, stop it. The output so far. */
static char *snapshot_midway(void)
{
    int out = open(path("before.out"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    struct kiln_config cfg;
    config(&cfg, out, NULL);
    char err[KILN_ERRMSG_MAX];
    struct runner r = {0};
    ck_assert_msg(kiln_vm_create(&cfg, &r.vm, err) == 0, "create: %s", err);
    pthread_create(&r.thread, NULL, run_main, &r);
    for (int i = 0; i < 2000 && file_size(path("before.out")) < 100000; i++)
        sleep_ms(5);
    ck_assert_int_eq(kiln_vm_pause(r.vm), 0);
    sleep_ms(200); /* the loop writes out what the UART had taken */
    int ret = kiln_vm_snapshot(r.vm, path("snap"), err);
    ck_assert_msg(ret == 0, "snapshot: %s", err);
    kiln_vm_stop(r.vm);
    pthread_join(r.thread, NULL);
    kiln_vm_destroy(r.vm);
    close(out);
    char *before = slurp(path("before.out"));
    ck_assert_msg(strlen(before) >= 100000 && strstr(before, "flood: done") == NULL,
                  "paused midway: %zu bytes", strlen(before));
    return before;
}

START_TEST(test_restore_goes_on)
{
    char *before = snapshot_midway();
    int out = open(path("after.out"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    struct kiln_config cfg;
    config(&cfg, out, path("snap"));
    char err[KILN_ERRMSG_MAX];
    struct runner r = {0};
    ck_assert_msg(kiln_vm_create(&cfg, &r.vm, err) == 0, "restore: %s", err);
    run_main(&r);
    kiln_vm_destroy(r.vm);
    close(out);
    ck_assert_int_eq(r.exit.reason, KILN_EXIT_STATUS);
    ck_assert_int_eq(r.exit.status, 0);
    char *after = slurp(path("after.out"));
    char *all = malloc(strlen(before) + strlen(after) + 1);
    strcpy(all, before);
    strcat(all, after);
    char *want = expected();
    /* Every line once, in order: the restored guest went on from the byte it had reached. */
    ck_assert_msg(strcmp(all, want) == 0, "before %zu + after %zu bytes != %zu expected",
                  strlen(before), strlen(after), strlen(want));
    free(before);
    free(after);
    free(all);
    free(want);
}
END_TEST

/* A corrupt state file, another machine shape, a missing snapshot: refused, with a reason. */
START_TEST(test_restore_refusals)
{
    free(snapshot_midway());
    struct kiln_config cfg;
    char err[KILN_ERRMSG_MAX];
    struct kiln_vm *vm = NULL;
    config(&cfg, -1, path("snap"));
    cfg.cpus = 2;
    ck_assert_int_eq(kiln_vm_create(&cfg, &vm, err), -EINVAL);
    ck_assert_msg(strstr(err, "1 vCPUs") && strstr(err, "the config 2"), "%s", err);
    config(&cfg, -1, path("snap"));
    cfg.memory_bytes = 32 << 20;
    ck_assert_int_eq(kiln_vm_create(&cfg, &vm, err), -EINVAL);
    ck_assert_msg(strstr(err, "memory"), "%s", err);
    config(&cfg, -1, path("snap"));
    cfg.vsock.cid = 6; /* the snapshot's device has CID 5 */
    ck_assert_int_eq(kiln_vm_create(&cfg, &vm, err), -EINVAL);
    ck_assert_msg(strstr(err, "virtio-vsock"), "%s", err);
    config(&cfg, -1, path("snap"));
    cfg.vsock.uds_path = NULL; /* one device fewer */
    ck_assert_int_eq(kiln_vm_create(&cfg, &vm, err), -EINVAL);
    ck_assert_msg(strstr(err, "devices"), "%s", err);
    /* One flipped byte in the middle of the state. */
    int fd = open(path("snap/state"), O_RDWR);
    off_t size = lseek(fd, 0, SEEK_END);
    unsigned char b;
    pread(fd, &b, 1, size / 2);
    b ^= 0x40;
    pwrite(fd, &b, 1, size / 2);
    close(fd);
    config(&cfg, -1, path("snap"));
    ck_assert_int_eq(kiln_vm_create(&cfg, &vm, err), -EINVAL);
    ck_assert_msg(strstr(err, "corrupt"), "%s", err);
    config(&cfg, -1, path("nosuch"));
    ck_assert_int_eq(kiln_vm_create(&cfg, &vm, err), -ENOENT);
    ck_assert_msg(strstr(err, "nosuch"), "%s", err);
    ck_assert_ptr_null(vm);
}
END_TEST

/* Snapshot needs a paused VM. */
START_TEST(test_snapshot_needs_pause)
{
    struct kiln_config cfg;
    config(&cfg, -1, NULL);
    char err[KILN_ERRMSG_MAX];
    struct kiln_vm *vm = NULL;
    ck_assert_int_eq(kiln_vm_create(&cfg, &vm, err), 0);
    ck_assert_int_eq(kiln_vm_snapshot(vm, path("early"), err), -EINVAL);
    ck_assert_msg(strstr(err, "paused"), "%s", err);
    kiln_vm_destroy(vm);
}
END_TEST

int main(void)
{
    if (access("/dev/kvm", R_OK | W_OK) != 0)
        return 77;
    if (!mkdtemp(tmpdir))
        return 1;
    snprintf(vsock_path, sizeof(vsock_path), "%s/v.sock", tmpdir);
    Suite *s = suite_create("snapshot");
    TCase *tc = tcase_create("snapshot");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_restore_goes_on);
    tcase_add_test(tc, test_restore_refusals);
    tcase_add_test(tc, test_snapshot_needs_pause);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        failed++;
    return failed ? 1 : 0;
}
