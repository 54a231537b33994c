/* test_api.c: libkiln's public API on real KVM: run, stop, pause/resume, timeouts, two VMs. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kiln.h"

#define SKIP 77

static const char *guest(const char *name)
{
    static __thread char path[512];
    snprintf(path, sizeof(path), "%s/%s.elf", KILN_GUEST_DIR, name);
    return path;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static struct kiln_vm *make_vm(const char *name, const char *cmdline, int out_fd,
                               uint64_t timeout_ms)
{
    struct kiln_config cfg;
    kiln_config_init(&cfg);
    cfg.kernel_path = guest(name);
    cfg.cmdline = cmdline;
    cfg.memory_bytes = 16 << 20;
    cfg.serial_out_fd = out_fd;
    cfg.timeout_ms = timeout_ms;
    char err[KILN_ERRMSG_MAX];
    struct kiln_vm *vm = NULL;
    int ret = kiln_vm_create(&cfg, &vm, err);
    ck_assert_msg(ret == 0, "create %s: %s", name, err);
    return vm;
}

/* Counts bytes arriving on a pipe until EOF. */
struct reader {
    int fd;
    atomic_ulong bytes;
    char head[64];
    pthread_t thread;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    char buf[4096];
    ssize_t n;
    while ((n = read(r->fd, buf, sizeof(buf))) > 0) {
        unsigned long before = atomic_fetch_add(&r->bytes, (unsigned long)n);
        if (before < sizeof(r->head) - 1) {
            size_t k = sizeof(r->head) - 1 - before;
            memcpy(r->head + before, buf, (size_t)n < k ? (size_t)n : k);
        }
    }
    return NULL;
}

static void reader_start(struct reader *r, int fd)
{
    memset(r, 0, sizeof(*r));
    r->fd = fd;
    pthread_create(&r->thread, NULL, reader_main, r);
}

struct stopper {
    struct kiln_vm *vm;
    long delay_ms;
};

static void *stopper_main(void *arg)
{
    struct stopper *s = arg;
    sleep_ms(s->delay_ms);
    kiln_vm_stop(s->vm);
    return NULL;
}

START_TEST(test_stop_from_another_thread)
{
    struct kiln_vm *vm = make_vm("spin", "", -1, 0);
    struct stopper s = {vm, 200};
    pthread_t t;
    pthread_create(&t, NULL, stopper_main, &s);
    struct kiln_exit ex;
    ck_assert_int_eq(kiln_vm_run(vm, &ex), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(ex.reason, KILN_EXIT_STOPPED);
    /* A VM runs once. */
    ck_assert_int_eq(kiln_vm_run(vm, &ex), -EINVAL);
    kiln_vm_destroy(vm);
}
END_TEST

START_TEST(test_stop_before_run)
{
    struct kiln_vm *vm = make_vm("spin", "", -1, 0);
    kiln_vm_stop(vm);
    struct kiln_exit ex;
    ck_assert_int_eq(kiln_vm_run(vm, &ex), 0);
    ck_assert_int_eq(ex.reason, KILN_EXIT_STOPPED);
    kiln_vm_destroy(vm);
}
END_TEST

START_TEST(test_timeout)
{
    struct kiln_vm *vm = make_vm("spin", "", -1, 300);
    struct kiln_exit ex;
    ck_assert_int_eq(kiln_vm_run(vm, &ex), 0);
    ck_assert_int_eq(ex.reason, KILN_EXIT_TIMEOUT);
    kiln_vm_destroy(vm);
}
END_TEST

struct runner {
    struct kiln_vm *vm;
    struct kiln_exit ex;
    int ret;
    pthread_t thread;
};

static void *runner_main(void *arg)
{
    struct runner *r = arg;
    r->ret = kiln_vm_run(r->vm, &r->ex);
    return NULL;
}

START_TEST(test_pause_and_resume)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    struct reader rd;
    reader_start(&rd, p[0]);
    struct kiln_vm *vm = make_vm("flood", "lines=100000", p[1], 0);
    ck_assert_int_eq(kiln_vm_pause(vm), -EINVAL); /* not running yet */
    struct runner r = {.vm = vm};
    pthread_create(&r.thread, NULL, runner_main, &r);
    while (atomic_load(&rd.bytes) < 1000)
        sleep_ms(5);
    ck_assert_int_eq(kiln_vm_pause(vm), 0);
    sleep_ms(100); /* output already queued before the pause drains */
    unsigned long paused_at = atomic_load(&rd.bytes);
    sleep_ms(300);
    ck_assert_uint_eq(atomic_load(&rd.bytes), paused_at);
    ck_assert_int_eq(kiln_vm_resume(vm), 0);
    for (int i = 0; i < 400 && atomic_load(&rd.bytes) == paused_at; i++)
        sleep_ms(5);
    ck_assert_uint_gt(atomic_load(&rd.bytes), paused_at);
    ck_assert_int_eq(kiln_vm_resume(vm), -EINVAL); /* not paused */
    kiln_vm_stop(vm);
    pthread_join(r.thread, NULL);
    ck_assert_int_eq(r.ret, 0);
    ck_assert(r.ex.reason == KILN_EXIT_STOPPED || r.ex.reason == KILN_EXIT_STATUS);
    kiln_vm_destroy(vm);
    close(p[1]);
    pthread_join(rd.thread, NULL);
    close(p[0]);
}
END_TEST

START_TEST(test_two_vms_at_once)
{
    int p[2][2];
    struct reader rd[2];
    struct runner r[2];
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(pipe(p[i]), 0);
        reader_start(&rd[i], p[i][0]);
        r[i] = (struct runner){.vm = make_vm(i ? "exitcode" : "hello", "status=9", p[i][1], 0)};
    }
    for (int i = 0; i < 2; i++)
        pthread_create(&r[i].thread, NULL, runner_main, &r[i]);
    for (int i = 0; i < 2; i++) {
        pthread_join(r[i].thread, NULL);
        kiln_vm_destroy(r[i].vm);
        close(p[i][1]);
        pthread_join(rd[i].thread, NULL);
        close(p[i][0]);
        ck_assert_int_eq(r[i].ret, 0);
        ck_assert_int_eq(r[i].ex.reason, KILN_EXIT_STATUS);
    }
    /* Each VM's console went to its own fd, and each guest's status is its own. */
    ck_assert_int_eq(r[0].ex.status, 0);
    ck_assert_int_eq(r[1].ex.status, 9);
    ck_assert_ptr_nonnull(strstr(rd[0].head, "Hello from kiln guest"));
    ck_assert_ptr_null(strstr(rd[1].head, "Hello from kiln guest"));
}
END_TEST

START_TEST(test_create_errors)
{
    struct kiln_config cfg;
    char err[KILN_ERRMSG_MAX];
    struct kiln_vm *vm = (struct kiln_vm *)1;
    kiln_config_init(&cfg);
    ck_assert_int_eq(kiln_vm_create(&cfg, &vm, err), -EINVAL); /* no kernel */
    ck_assert_ptr_null(vm);
    cfg.kernel_path = "/nonexistent/kernel";
    ck_assert_int_eq(kiln_vm_create(&cfg, &vm, err), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/kernel"));
    cfg.kernel_path = guest("hello");
    cfg.cpus = 0;
    ck_assert_int_eq(kiln_vm_create(&cfg, &vm, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "cpus"));
    kiln_vm_destroy(NULL);
}
END_TEST

/* The vnet guest over the API: ARP and pings through user-mode networking; frames counted. */
START_TEST(test_user_network)
{
    struct kiln_config cfg;
    kiln_config_init(&cfg);
    cfg.kernel_path = guest("vnet");
    cfg.memory_bytes = 32 << 20;
    cfg.timeout_ms = 60000;
    cfg.nnets = 1;
    cfg.nets[0] = (struct kiln_net){.kind = KILN_NET_USER};
    char err[KILN_ERRMSG_MAX];
    struct kiln_vm *vm;
    ck_assert_msg(kiln_vm_create(&cfg, &vm, err) == 0, "%s", err);
    struct kiln_exit ex;
    ck_assert_int_eq(kiln_vm_run(vm, &ex), 0);
    ck_assert_msg(ex.reason == KILN_EXIT_STATUS && ex.status == 0, "reason %d status %d: %s",
                  ex.reason, ex.status, ex.message);
    struct kiln_stats st;
    kiln_vm_stats(vm, &st);
    /* An ARP request and two pings at least each way; nothing dropped. */
    ck_assert_uint_ge(st.net_tx_frames, 3);
    ck_assert_uint_ge(st.net_rx_frames, 3);
    ck_assert_uint_eq(st.net_rx_dropped + st.net_tx_dropped, 0);
    kiln_vm_destroy(vm);
}
END_TEST

/* Network set-up errors are reported by create, naming the input; nothing is left behind. */
START_TEST(test_network_errors)
{
    struct kiln_config cfg;
    kiln_config_init(&cfg);
    cfg.kernel_path = guest("hello");
    cfg.memory_bytes = 16 << 20;
    cfg.nnets = 1;
    cfg.nets[0] = (struct kiln_net){.kind = KILN_NET_TAP, .tap_name = "kilnnosuch9"};
    char err[KILN_ERRMSG_MAX];
    struct kiln_vm *vm = (struct kiln_vm *)1;
    ck_assert_int_eq(kiln_vm_create(&cfg, &vm, err), -ENODEV);
    ck_assert_ptr_null(vm);
    ck_assert_ptr_nonnull(strstr(err, "kilnnosuch9"));
    cfg.nets[0] = (struct kiln_net){.kind = KILN_NET_USER, .nhostfwd = 1};
    cfg.nets[0].hostfwd[0] =
        (struct kiln_hostfwd){.host_addr = "not-an-address", .host_port = 8080, .guest_port = 80};
    ck_assert_int_eq(kiln_vm_create(&cfg, &vm, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "not-an-address"));
    cfg.nets[0] = (struct kiln_net){.kind = 7};
    ck_assert_int_eq(kiln_vm_create(&cfg, &vm, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "kind"));
}
END_TEST

/* Skip (77) where /dev/kvm is missing or cannot run the tiny guests. */
static bool kvm_usable(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        printf("SKIP: /dev/kvm: %s\n", strerror(errno));
        return false;
    }
    close(fd);
    struct kiln_config cfg;
    kiln_config_init(&cfg);
    cfg.kernel_path = guest("hello");
    cfg.memory_bytes = 16 << 20;
    char err[KILN_ERRMSG_MAX];
    struct kiln_vm *vm;
    if (kiln_vm_create(&cfg, &vm, err) < 0) {
        printf("SKIP: cannot create a VM: %s\n", err);
        return false;
    }
    struct kiln_exit ex;
    kiln_vm_run(vm, &ex);
    kiln_vm_destroy(vm);
    if (ex.reason == KILN_EXIT_ERROR) {
        printf("SKIP: this host cannot run the test guests: %s\n", ex.message);
        return false;
    }
    return true;
}

int main(void)
{
    if (!kvm_usable())
        return SKIP;
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stop_from_another_thread);
    tcase_add_test(tc, test_stop_before_run);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_pause_and_resume);
    tcase_add_test(tc, test_two_vms_at_once);
    tcase_add_test(tc, test_create_errors);
    tcase_add_test(tc, test_user_network);
    tcase_add_test(tc, test_network_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
