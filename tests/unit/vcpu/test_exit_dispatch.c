/* test_exit_dispatch.c: vCPU exit handling on a hand-filled struct kvm_run, no KVM needed. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "devices/exitdev.h"
#include "devices/i8042.h"
#include "vm.h"

#define RUN_SIZE 4096

/* A VM with no KVM behind it: its buses, the exit device and the i8042, and one vCPU's run
 * page filled in by hand. */
struct fixture {
    struct kiln_vm *vm;
    struct vcpu vcpu;
    struct device *exitdev;
    struct device *kbd;
    uint8_t *page;
};

static struct fixture *fixture_new(void)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->page = calloc(1, RUN_SIZE);
    struct kiln_config cfg;
    kiln_config_init(&cfg);
    cfg.log_level = KILN_LOG_ERROR;
    f->vm = vm_alloc(&cfg);
    ck_assert_ptr_nonnull(f->vm);
    struct kiln_vm *vm = f->vm;
    vm->cpus.host.run_size = RUN_SIZE;
    const struct end_vm end = {vm_end, vm};
    ck_assert_int_eq(exitdev_create(&end, &f->exitdev), 0);
    ck_assert_int_eq(i8042_create(&end, &f->kbd), 0);
    ck_assert_int_eq(bus_add_device(&vm->pio, &vm->mmio, f->exitdev, NULL), 0);
    ck_assert_int_eq(bus_add_device(&vm->pio, &vm->mmio, f->kbd, NULL), 0);
    f->vcpu =
        (struct vcpu){.set = &vm->cpus, .index = 0, .fd = -1, .run = (struct kvm_run *)f->page};
    return f;
}

static void fixture_free(struct fixture *f)
{
    f->exitdev->ops->destroy(f->exitdev);
    f->kbd->ops->destroy(f->kbd);
    kiln_vm_destroy(f->vm);
    free(f->page);
    free(f);
}

static void set_io(struct fixture *f, uint16_t port, bool out, uint8_t size, uint32_t count,
                   const void *data)
{
    struct kvm_run *run = f->vcpu.run;
    run->exit_reason = KVM_EXIT_IO;
    run->io.direction = out ? KVM_EXIT_IO_OUT : KVM_EXIT_IO_IN;
    run->io.size = size;
    run->io.port = port;
    run->io.count = count;
    run->io.data_offset = 1024;
    if (data)
        memcpy(f->page + 1024, data, (size_t)size * count);
}

START_TEST(test_exit_device_status)
{
    struct fixture *f = fixture_new();
    uint8_t v = 42;
    set_io(f, EXITDEV_PORT, true, 1, 1, &v);
    ck_assert_int_eq(vcpu_handle_exit(&f->vcpu), VCPU_CONTINUE);
    ck_assert(f->vm->ended);
    ck_assert(atomic_load(&f->vm->cpus.stopping));
    ck_assert_int_eq(f->vm->exit.reason, KILN_EXIT_STATUS);
    ck_assert_int_eq(f->vm->exit.status, 42);
    /* The first reason wins. */
    vm_finish(f->vm, KILN_EXIT_TIMEOUT, 0, 0, "late");
    ck_assert_int_eq(f->vm->exit.reason, KILN_EXIT_STATUS);
    fixture_free(f);
}
END_TEST

START_TEST(test_exit_device_ignores_wide_writes)
{
    struct fixture *f = fixture_new();
    uint16_t v = 0x0101;
    set_io(f, EXITDEV_PORT, true, 2, 1, &v);
    vcpu_handle_exit(&f->vcpu);
    ck_assert(!f->vm->ended);
    fixture_free(f);
}
END_TEST

START_TEST(test_i8042_reset)
{
    struct fixture *f = fixture_new();
    uint8_t v = 0xfe;
    set_io(f, I8042_CMD_PORT, true, 1, 1, &v);
    vcpu_handle_exit(&f->vcpu);
    ck_assert_int_eq(f->vm->exit.reason, KILN_EXIT_REBOOT);
    fixture_free(f);
}
END_TEST

START_TEST(test_unknown_port_reads_ones)
{
    struct fixture *f = fixture_new();
    set_io(f, 0x1234, false, 4, 2, NULL);
    memset(f->page + 1024, 0, 8);
    ck_assert_int_eq(vcpu_handle_exit(&f->vcpu), VCPU_CONTINUE);
    for (int i = 0; i < 8; i++)
        ck_assert_uint_eq(f->page[1024 + i], 0xff);
    ck_assert(!f->vm->ended);
    fixture_free(f);
}
END_TEST

START_TEST(test_io_data_outside_run_page_refused)
{
    struct fixture *f = fixture_new();
    set_io(f, 0x1234, false, 4, 0x100000, NULL);
    f->vcpu.run->io.data_offset = RUN_SIZE - 8;
    /* Must not write past the run page (ASan/valgrind would flag it). */
    ck_assert_int_eq(vcpu_handle_exit(&f->vcpu), VCPU_CONTINUE);
    fixture_free(f);
}
END_TEST

START_TEST(test_rep_outs_each_item)
{
    struct fixture *f = fixture_new();
    /* "rep outsb" of three bytes: the exit device sees the first one and ends the VM. */
    uint8_t bytes[3] = {7, 8, 9};
    set_io(f, EXITDEV_PORT, true, 1, 3, bytes);
    vcpu_handle_exit(&f->vcpu);
    ck_assert_int_eq(f->vm->exit.status, 7);
    fixture_free(f);
}
END_TEST

START_TEST(test_shutdown_is_crash)
{
    struct fixture *f = fixture_new();
    f->vcpu.run->exit_reason = KVM_EXIT_SHUTDOWN;
    ck_assert_int_eq(vcpu_handle_exit(&f->vcpu), VCPU_STOP);
    ck_assert_int_eq(f->vm->exit.reason, KILN_EXIT_CRASH);
    fixture_free(f);
}
END_TEST

START_TEST(test_system_events)
{
    const struct {
        uint32_t type;
        enum kiln_exit_reason reason;
    } cases[] = {
        {KVM_SYSTEM_EVENT_SHUTDOWN, KILN_EXIT_POWEROFF},
        {KVM_SYSTEM_EVENT_RESET, KILN_EXIT_REBOOT},
        {KVM_SYSTEM_EVENT_CRASH, KILN_EXIT_CRASH},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fixture *f = fixture_new();
        f->vcpu.run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
        f->vcpu.run->system_event.type = cases[i].type;
        ck_assert_int_eq(vcpu_handle_exit(&f->vcpu), VCPU_STOP);
        ck_assert_int_eq(f->vm->exit.reason, cases[i].reason);
        fixture_free(f);
    }
}
END_TEST

START_TEST(test_internal_error_is_kiln_error)
{
    struct fixture *f = fixture_new();
    f->vcpu.run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
    f->vcpu.run->internal.suberror = 1;
    ck_assert_int_eq(vcpu_handle_exit(&f->vcpu), VCPU_STOP);
    ck_assert_int_eq(f->vm->exit.reason, KILN_EXIT_ERROR);
    ck_assert_ptr_nonnull(strstr(f->vm->exit.message, "internal error"));
    fixture_free(f);
}
END_TEST

START_TEST(test_mmio_miss_reads_ones)
{
    struct fixture *f = fixture_new();
    struct kvm_run *run = f->vcpu.run;
    run->exit_reason = KVM_EXIT_MMIO;
    run->mmio.phys_addr = 0xd0000000;
    run->mmio.len = 4;
    run->mmio.is_write = 0;
    ck_assert_int_eq(vcpu_handle_exit(&f->vcpu), VCPU_CONTINUE);
    ck_assert_uint_eq(run->mmio.data[0], 0xff);
    ck_assert_uint_eq(run->mmio.data[3], 0xff);
    /* A length beyond the data field is ignored rather than overrunning it. */
    run->mmio.len = 64;
    ck_assert_int_eq(vcpu_handle_exit(&f->vcpu), VCPU_CONTINUE);
    fixture_free(f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("exit_dispatch");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_exit_device_status);
    tcase_add_test(tc, test_exit_device_ignores_wide_writes);
    tcase_add_test(tc, test_i8042_reset);
    tcase_add_test(tc, test_unknown_port_reads_ones);
    tcase_add_test(tc, test_io_data_outside_run_page_refused);
    tcase_add_test(tc, test_rep_outs_each_item);
    tcase_add_test(tc, test_shutdown_is_crash);
    tcase_add_test(tc, test_system_events);
    tcase_add_test(tc, test_internal_error_is_kiln_error);
    tcase_add_test(tc, test_mmio_miss_reads_ones);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
