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

#define LINES 4000

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
    cfg->cmdline = "lines=4000";
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

/*
 * After a pause: wait until the loop has written out what the UART had taken (p stops growing
 * for 200 ms; at most 5 s). Output still pending at the snapshot is in it and comes out again
 * after the restore; stopping the VM writes it out too, so the two files would both hold it.
 */
static void settle(const char *p)
{
    long size = file_size(p);
    for (int quiet = 0, i = 0; quiet < 4 && i < 100; i++) {
        sleep_ms(50);
        long now = file_size(p);
        quiet = now == size ? quiet + 1 : 0;
        size = now;
    }
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

/* A new VM from cfg running on r's thread, paused once its console file out has min_bytes and
 * settled. */
static void start_and_pause(struct runner *r, const struct kiln_config *cfg, const char *out,
                            long min_bytes)
{
    char err[KILN_ERRMSG_MAX];
    *r = (struct runner){0};
    ck_assert_msg(kiln_vm_create(cfg, &r->vm, err) == 0, "create: %s", err);
    pthread_create(&r->thread, NULL, run_main, r);
    for (int i = 0; i < 2000 && file_size(out) < min_bytes; i++)
        sleep_ms(5);
    ck_assert_int_eq(kiln_vm_pause(r->vm), 0);
    settle(out); /* the loop writes out what the UART had taken */
}

/* Stop and destroy r's VM and close its console fd: what the console file out holds. */
static char *stop_vm(struct runner *r, int out_fd, const char *out)
{
    kiln_vm_stop(r->vm);
    pthread_join(r->thread, NULL);
    kiln_vm_destroy(r->vm);
    close(out_fd);
    return slurp(out);
}

/* A VM restored from cfg run to its end on this thread; what its console file out holds. */
static char *restore_and_run(struct runner *r, const struct kiln_config *cfg, int out_fd,
                             const char *out)
{
    char err[KILN_ERRMSG_MAX];
    *r = (struct runner){0};
    ck_assert_msg(kiln_vm_create(cfg, &r->vm, err) == 0, "restore: %s", err);
    run_main(r);
    kiln_vm_destroy(r->vm);
    if (out_fd >= 0)
        close(out_fd);
    return out ? slurp(out) : NULL;
}

/* a then b, in a new string. */
static char *joined(const char *a, const char *b)
{
    char *all = malloc(strlen(a) + strlen(b) + 1);
    strcpy(all, a);
    strcat(all, b);
    return all;
}

/* Boot flood, pause it part way, snapshot into tmpdir/snap, stop it. The output so far. */
static char *snapshot_midway(void)
{
    char out_path[600], err[KILN_ERRMSG_MAX];
    snprintf(out_path, sizeof(out_path), "%s", path("before.out"));
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    struct kiln_config cfg;
    config(&cfg, out, NULL);
    struct runner r;
    start_and_pause(&r, &cfg, out_path, 100000);
    int ret = kiln_vm_snapshot(r.vm, path("snap"), err);
    ck_assert_msg(ret == 0, "snapshot: %s", err);
    char *before = stop_vm(&r, out, out_path);
    ck_assert_msg(strlen(before) >= 100000 && strstr(before, "flood: done") == NULL,
                  "paused midway: %zu bytes", strlen(before));
    return before;
}

START_TEST(test_restore_goes_on)
{
    char *before = snapshot_midway();
    char out_path[600], snap[600];
    snprintf(out_path, sizeof(out_path), "%s", path("after.out"));
    snprintf(snap, sizeof(snap), "%s", path("snap"));
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    struct kiln_config cfg;
    config(&cfg, out, snap);
    struct runner r;
    char *after = restore_and_run(&r, &cfg, out, out_path);
    ck_assert_int_eq(r.exit.reason, KILN_EXIT_STATUS);
    ck_assert_int_eq(r.exit.status, 0);
    char *all = joined(before, after);
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

#define ROUNDS 4000

/* The vmmio guest doing ROUNDS disk rounds on a virtio-mmio disk (image: tmpdir/mmio.img). */
static void mmio_config(struct kiln_config *cfg, int out_fd, const char *image,
                        const char *restore_dir)
{
    kiln_config_init(cfg);
    cfg->kernel_path = KILN_GUEST_DIR "/vmmio.elf";
    cfg->cmdline = "rounds=4000";
    cfg->memory_bytes = 32 << 20;
    cfg->serial_out_fd = out_fd;
    cfg->timeout_ms = 120000;
    cfg->restore_dir = restore_dir;
    cfg->transport = KILN_TRANSPORT_MMIO;
    cfg->disks[0] = (struct kiln_disk){.path = image};
    cfg->ndisks = 1;
}

/* The rounds in out's whole lines, each once and in order from 1; the number seen, or -1 if out
 * of order. */
static int rounds_in_order(const char *out)
{
    int next = 1;
    for (const char *l = strstr(out, "vmmio: round "); l; l = strstr(l + 1, "vmmio: round ")) {
        if (!strchr(l, '\n'))
            break; /* the pause fell in the middle of this line: the rest comes after */
        if (atoi(l + 13) != next)
            return -1;
        next++;
    }
    return next - 1;
}

/*
 * A guest driving a virtio-mmio disk by its level interrupt is snapshotted midway and restored:
 * its rings, status and line go on, every round once, and its last write lands on the disk.
 */
START_TEST(test_restore_mmio_disk)
{
    char image[600], snap[600];
    snprintf(image, sizeof(image), "%s", path("mmio.img"));
    snprintf(snap, sizeof(snap), "%s", path("mmio-snap"));
    int fd = open(image, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_eq(write(fd, "KILNMMIO", 8), 8);
    ck_assert_int_eq(ftruncate(fd, 1 << 20), 0);
    close(fd);
    char out_path[600], err[KILN_ERRMSG_MAX];
    snprintf(out_path, sizeof(out_path), "%s", path("mmio-before.out"));
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    struct kiln_config cfg;
    mmio_config(&cfg, out, image, NULL);
    struct runner r;
    start_and_pause(&r, &cfg, out_path, 8000);
    ck_assert_msg(kiln_vm_snapshot(r.vm, snap, err) == 0, "snapshot: %s", err);
    char *before = stop_vm(&r, out, out_path);
    int seen = rounds_in_order(before);
    ck_assert_msg(seen > 100 && seen < ROUNDS, "paused midway: %d rounds", seen);

    snprintf(out_path, sizeof(out_path), "%s", path("mmio-after.out"));
    out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    mmio_config(&cfg, out, image, snap);
    char *after = restore_and_run(&r, &cfg, out, out_path);
    ck_assert_msg(r.exit.reason == KILN_EXIT_STATUS && r.exit.status == 0,
                  "restored guest: reason %d status %d: %s", (int)r.exit.reason, (int)r.exit.status,
                  after);
    char *all = joined(before, after);
    ck_assert_msg(rounds_in_order(all) == ROUNDS, "rounds before %d, all %d", seen,
                  rounds_in_order(all));
    ck_assert_ptr_nonnull(strstr(after, "vmmio: ok, interrupts 12000 "));
    char sector[16] = "";
    fd = open(image, O_RDONLY);
    ck_assert_int_eq(pread(fd, sector, 15, 512), 15);
    close(fd);
    ck_assert_str_eq(sector, "mmio-round-4000");
    free(before);
    free(after);
    free(all);
}
END_TEST

/* fwsnap.bin (guests/fwsnap.S) booted as firmware, with the disk firmware needs (never read). */
static void fw_config(struct kiln_config *cfg, int out_fd, const char *restore_dir)
{
    static char disk[600]; /* path() reuses its buffer: restore_dir may be in it */
    snprintf(disk, sizeof(disk), "%s/fw.img", tmpdir);
    kiln_config_init(cfg);
    cfg->firmware_path = restore_dir ? NULL : KILN_GUEST_DIR "/fwsnap.bin";
    cfg->memory_bytes = 16 << 20;
    cfg->serial_out_fd = out_fd;
    cfg->timeout_ms = 120000;
    cfg->restore_dir = restore_dir;
    cfg->disks[0].path = disk;
    cfg->ndisks = 1;
}

/*
 * A firmware-booted VM snapshotted in the middle of its ticks goes on from there as a firmware
 * machine, its RTC (index and CMOS memory) and fw_cfg (selector and read position) as they were:
 * the guest checks both after its last tick and exits 0 only if they are.
 */
START_TEST(test_firmware_restore)
{
    int fd = open(path("fw.img"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_eq(ftruncate(fd, 1 << 20), 0);
    close(fd);
    char out_path[600], snap[600], err[KILN_ERRMSG_MAX];
    snprintf(out_path, sizeof(out_path), "%s", path("fw-before.out"));
    snprintf(snap, sizeof(snap), "%s", path("fwsnap"));
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    struct kiln_config cfg;
    fw_config(&cfg, out, NULL);
    struct runner r;
    start_and_pause(&r, &cfg, out_path, 1000);
    ck_assert_msg(kiln_vm_snapshot(r.vm, snap, err) == 0, "snapshot: %s", err);
    char *before = stop_vm(&r, out, out_path);
    ck_assert_msg(strlen(before) >= 1000 && !strstr(before, "fwsnap:"), "%s", before);

    snprintf(out_path, sizeof(out_path), "%s", path("fw-after.out"));
    out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    fw_config(&cfg, out, snap);
    /* The restored VM names its BIOS as a firmware machine does (checked before it runs). */
    struct kiln_vm *check = NULL;
    ck_assert_msg(kiln_vm_create(&cfg, &check, err) == 0, "restore: %s", err);
    ck_assert_str_eq(kiln_vm_config(check)->firmware_path, KILN_GUEST_DIR "/fwsnap.bin");
    kiln_vm_destroy(check);
    char *after = restore_and_run(&r, &cfg, out, out_path);
    ck_assert_msg(strstr(after, "tick 0fff\nfwsnap: ok\n"), "after the restore: %.200s",
                  after + (strlen(after) > 200 ? strlen(after) - 200 : 0));
    ck_assert_int_eq(r.exit.reason, KILN_EXIT_STATUS);
    ck_assert_int_eq(r.exit.status, 0);
    /* Every tick once, in order: it went on from the byte it had reached, not from the reset. */
    char *all = joined(before, after);
    char *want = malloc(0x1000 * 10 + 16);
    size_t n = 0;
    for (unsigned i = 0; i < 0x1000; i++)
        n += (size_t)sprintf(want + n, "tick %04x\n", i);
    strcpy(want + n, "fwsnap: ok\n");
    ck_assert_msg(strcmp(all, want) == 0, "before %zu + after %zu bytes != %zu expected",
                  strlen(before), strlen(after), strlen(want));
    free(all);
    free(want);
    free(before);
    free(after);
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
    /* A memory file of another size than the machine's RAM (the state is intact). */
    int fd = open(path("snap/memory"), O_RDWR);
    off_t mem_size = lseek(fd, 0, SEEK_END);
    ck_assert_int_eq(ftruncate(fd, 1 << 20), 0);
    config(&cfg, -1, path("snap"));
    ck_assert_int_eq(kiln_vm_create(&cfg, &vm, err), -EINVAL);
    ck_assert_msg(strstr(err, "memory is 1048576 bytes"), "%s", err);
    ck_assert_int_eq(ftruncate(fd, mem_size), 0);
    close(fd);
    /* One flipped byte in the middle of the state. */
    fd = open(path("snap/state"), O_RDWR);
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

/* kiln_vm_snapshot_fds: into two files the caller opened, refused for files that cannot be. */
START_TEST(test_snapshot_fds)
{
    char out_path[600], err[KILN_ERRMSG_MAX];
    snprintf(out_path, sizeof(out_path), "%s", path("fds.out"));
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    struct kiln_config cfg;
    config(&cfg, out, NULL);
    struct runner r;
    start_and_pause(&r, &cfg, out_path, 10000);
    mkdir(path("fds"), 0700);
    int st = open(path("fds/state"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int mem = open(path("fds/memory"), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ro = open(path("fds.out"), O_RDONLY | O_CLOEXEC);
    int app = open(path("fds.out"), O_WRONLY | O_APPEND | O_CLOEXEC);
    int dir = open(path("fds"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_eq(kiln_vm_snapshot_fds(r.vm, ro, mem, err), -EBADF);
    ck_assert_msg(strstr(err, "state: not open for writing"), "%s", err);
    ck_assert_int_eq(kiln_vm_snapshot_fds(r.vm, st, app, err), -EBADF);
    ck_assert_int_eq(kiln_vm_snapshot_fds(r.vm, st, dir, err), -EINVAL);
    ck_assert_msg(strstr(err, "memory: not a regular file"), "%s", err);
    ck_assert_int_eq(kiln_vm_snapshot_fds(r.vm, st, st, err), -EINVAL);
    ck_assert_msg(strstr(err, "the same file"), "%s", err);
    ck_assert_int_eq(file_size(path("fds/state")) + file_size(path("fds/memory")), 0);
    int ret = kiln_vm_snapshot_fds(r.vm, st, mem, err);
    ck_assert_msg(ret == 0, "snapshot: %s", err);
    ck_assert_int_eq(file_size(path("fds/memory")), 16 << 20);
    ck_assert_int_gt(file_size(path("fds/state")), 0);
    ck_assert_int_ge(fcntl(st, F_GETFD), 0); /* still the caller's */
    for (int fd = 0; fd < 5; fd++)
        close((int[]){st, mem, ro, app, dir}[fd]);
    free(stop_vm(&r, out, out_path));
    /* What they hold is a snapshot a restore takes: the guest finishes its lines. */
    config(&cfg, -1, path("fds"));
    restore_and_run(&r, &cfg, -1, NULL);
    ck_assert_int_eq(r.exit.reason, KILN_EXIT_STATUS);
    ck_assert_int_eq(r.exit.status, 0);
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
    tcase_add_test(tc, test_restore_mmio_disk);
    tcase_add_test(tc, test_snapshot_needs_pause);
    tcase_add_test(tc, test_snapshot_fds);
    tcase_add_test(tc, test_firmware_restore);
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
