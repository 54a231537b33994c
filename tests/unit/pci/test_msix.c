/* test_msix.c: MSI-X table accesses, function/vector masking, pending bits, the capability. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "fixtures.h"
#include "pci/msix.h"
#include "pci/pci.h"
#include "util.h"

/* What reached the "interrupt controller". */
struct sink {
    unsigned count;
    unsigned vector;
    uint64_t addr;
    uint32_t data;
};

static void deliver(void *ctx, unsigned vector, uint64_t addr, uint32_t data)
{
    struct sink *s = ctx;
    s->count++;
    s->vector = vector;
    s->addr = addr;
    s->data = data;
}

static unsigned log_lines;
static const struct kiln_log test_log = {fixture_count_log, &log_lines, KILN_LOG_DEBUG};

static void wr32(struct msix *m, uint64_t off, uint32_t v)
{
    uint8_t d[4];
    memcpy(d, &v, 4);
    msix_table_access(m, off, d, 4, true);
}

static uint32_t rd32(struct msix *m, uint64_t off)
{
    uint8_t d[4];
    msix_table_access(m, off, d, 4, false);
    uint32_t v;
    memcpy(&v, d, 4);
    return v;
}

static uint64_t pba64(struct msix *m, uint64_t off)
{
    uint8_t d[8];
    msix_pba_access(m, off, d, 8, false);
    uint64_t v;
    memcpy(&v, d, 8);
    return v;
}

/* Program vector v with an address/data pair and its mask bit. */
static void program(struct msix *m, unsigned v, uint64_t addr, uint32_t data, bool masked)
{
    wr32(m, v * 16 + 0, (uint32_t)addr);
    wr32(m, v * 16 + 4, (uint32_t)(addr >> 32));
    wr32(m, v * 16 + 8, data);
    wr32(m, v * 16 + 12, masked ? MSIX_VECTOR_MASKED : 0);
}

START_TEST(test_init_and_reset_state)
{
    struct msix m;
    struct sink s = {0};
    ck_assert_int_eq(msix_init(&m, 0, deliver, &s, NULL), -EINVAL);
    ck_assert_int_eq(msix_init(&m, MSIX_MAX_VECTORS + 1, deliver, &s, NULL), -EINVAL);
    ck_assert_int_eq(msix_init(&m, 3, NULL, &s, NULL), -EINVAL);
    ck_assert_int_eq(msix_init(&m, 65, deliver, &s, NULL), 0);
    ck_assert_uint_eq(msix_table_bytes(&m), 65 * 16);
    ck_assert_uint_eq(msix_pba_bytes(&m), 16);
    for (unsigned v = 0; v < 65; v++) {
        ck_assert_uint_eq(rd32(&m, v * 16 + 12), MSIX_VECTOR_MASKED);
        ck_assert_uint_eq(rd32(&m, v * 16), 0);
    }
    ck_assert(!msix_enabled(&m));
    ck_assert_int_eq(msix_fire(&m, 0), MSIX_DISABLED);
    ck_assert_uint_eq(s.count, 0);
    ck_assert(!msix_is_pending(&m, 0)); /* disabled: nothing is remembered */
    msix_destroy(&m);
}
END_TEST

START_TEST(test_table_access)
{
    struct msix m;
    struct sink s = {0};
    ck_assert_int_eq(msix_init(&m, 4, deliver, &s, NULL), 0);
    program(&m, 2, 0x00000001fee01003ULL, 0x4041, true);
    ck_assert_uint_eq(rd32(&m, 2 * 16 + 0), 0xfee01000); /* reserved low bits dropped */
    ck_assert_uint_eq(rd32(&m, 2 * 16 + 4), 1);
    ck_assert_uint_eq(rd32(&m, 2 * 16 + 8), 0x4041);
    /* Reserved vector control bits do not stick. */
    wr32(&m, 2 * 16 + 12, 0xfffffffe);
    ck_assert_uint_eq(rd32(&m, 2 * 16 + 12), 0);
    /* 8-byte accesses: address as one qword, data + control as another. */
    uint8_t q[8];
    msix_table_access(&m, 2 * 16, q, 8, false);
    uint64_t a;
    memcpy(&a, q, 8);
    ck_assert_uint_eq(a, 0x00000001fee01000ULL);
    uint64_t dc = 0x0000000100005151ULL;
    memcpy(q, &dc, 8);
    msix_table_access(&m, 3 * 16 + 8, q, 8, true);
    ck_assert_uint_eq(rd32(&m, 3 * 16 + 8), 0x5151);
    ck_assert_uint_eq(rd32(&m, 3 * 16 + 12), 1);
    msix_destroy(&m);
}
END_TEST

START_TEST(test_bad_accesses)
{
    struct msix m;
    struct sink s = {0};
    log_lines = 0;
    ck_assert_int_eq(msix_init(&m, 2, deliver, &s, &test_log), 0);
    uint8_t d[8];
    memset(d, 0x5a, sizeof(d));
    msix_table_access(&m, 0, d, 2, true);  /* too small */
    msix_table_access(&m, 2, d, 4, true);  /* misaligned */
    msix_table_access(&m, 4, d, 8, true);  /* qword not qword-aligned */
    msix_table_access(&m, 32, d, 4, true); /* beyond the table */
    msix_table_access(&m, ~0ULL - 3, d, 4, true);
    ck_assert_uint_eq(rd32(&m, 0), 0);
    ck_assert_uint_eq(rd32(&m, 4), 0);
    ck_assert_uint_eq(rd32(&m, 12), MSIX_VECTOR_MASKED);
    msix_table_access(&m, 1, d, 1, false);
    ck_assert_uint_eq(d[0], 0xff);
    ck_assert_uint_eq(rd32(&m, 28), MSIX_VECTOR_MASKED);
    msix_table_access(&m, 32, d, 4, false);
    ck_assert_uint_eq(d[0], 0xff);
    ck_assert_uint_eq(log_lines, 1); /* once per device, however hostile */
    /* The PBA is read-only and checked the same way. */
    msix_pba_access(&m, 0, d, 8, true);
    ck_assert_uint_eq(pba64(&m, 0), 0);
    msix_pba_access(&m, 8, d, 4, false);
    ck_assert_uint_eq(d[0], 0xff);
    msix_destroy(&m);
}
END_TEST

START_TEST(test_deliver_unmasked)
{
    struct msix m;
    struct sink s = {0};
    ck_assert_int_eq(msix_init(&m, 4, deliver, &s, NULL), 0);
    program(&m, 1, 0xfee00000, 0x31, false);
    msix_write_control(&m, MSIX_CTRL_ENABLE);
    ck_assert(msix_enabled(&m));
    ck_assert_int_eq(msix_fire(&m, 1), MSIX_DELIVERED);
    ck_assert_uint_eq(s.count, 1);
    ck_assert_uint_eq(s.vector, 1);
    ck_assert_uint_eq(s.addr, 0xfee00000);
    ck_assert_uint_eq(s.data, 0x31);
    ck_assert_int_eq(msix_fire(&m, 4), MSIX_BAD_VECTOR);
    ck_assert_int_eq(msix_fire(&m, 0xffff), MSIX_BAD_VECTOR);
    ck_assert_uint_eq(s.count, 1);
    msix_destroy(&m);
}
END_TEST

START_TEST(test_vector_mask_pending)
{
    struct msix m;
    struct sink s = {0};
    ck_assert_int_eq(msix_init(&m, 70, deliver, &s, NULL), 0);
    msix_write_control(&m, MSIX_CTRL_ENABLE);
    program(&m, 66, 0xfee00000, 0x66, true);
    ck_assert_int_eq(msix_fire(&m, 66), MSIX_PENDING);
    ck_assert_int_eq(msix_fire(&m, 66), MSIX_PENDING); /* coalesces */
    ck_assert_uint_eq(s.count, 0);
    ck_assert(msix_is_pending(&m, 66));
    ck_assert_uint_eq(pba64(&m, 8), 1ULL << 2);
    uint8_t d[4];
    msix_pba_access(&m, 12, d, 4, false);
    ck_assert_uint_eq(d[0] | d[1] | d[2] | d[3], 0);
    /* Changing the message while masked is what drivers do; the new one is sent. */
    wr32(&m, 66 * 16 + 8, 0x67);
    wr32(&m, 66 * 16 + 12, 0);
    ck_assert_uint_eq(s.count, 1);
    ck_assert_uint_eq(s.vector, 66);
    ck_assert_uint_eq(s.data, 0x67);
    ck_assert(!msix_is_pending(&m, 66));
    ck_assert_uint_eq(pba64(&m, 8), 0);
    /* Unmasking with nothing pending sends nothing. */
    wr32(&m, 66 * 16 + 12, 1);
    wr32(&m, 66 * 16 + 12, 0);
    ck_assert_uint_eq(s.count, 1);
    msix_destroy(&m);
}
END_TEST

START_TEST(test_function_mask_and_enable)
{
    struct msix m;
    struct sink s = {0};
    ck_assert_int_eq(msix_init(&m, 3, deliver, &s, NULL), 0);
    program(&m, 0, 0xfee00000, 0x20, false);
    program(&m, 2, 0xfee01000, 0x22, false);
    msix_write_control(&m, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
    ck_assert_int_eq(msix_fire(&m, 0), MSIX_PENDING);
    ck_assert_int_eq(msix_fire(&m, 2), MSIX_PENDING);
    ck_assert_uint_eq(pba64(&m, 0), 0x5);
    /* Dropping enable keeps them pending; re-enabling unmasked sends both. */
    msix_write_control(&m, MSIX_CTRL_MASKALL);
    ck_assert_uint_eq(s.count, 0);
    msix_write_control(&m, MSIX_CTRL_ENABLE);
    ck_assert_uint_eq(s.count, 2);
    ck_assert_uint_eq(s.vector, 2);
    ck_assert_uint_eq(pba64(&m, 0), 0);
    /* A vector masked on its own stays pending when the function is unmasked. */
    wr32(&m, 0 * 16 + 12, 1);
    msix_write_control(&m, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
    ck_assert_int_eq(msix_fire(&m, 0), MSIX_PENDING);
    msix_write_control(&m, MSIX_CTRL_ENABLE);
    ck_assert_uint_eq(s.count, 2);
    ck_assert(msix_is_pending(&m, 0));
    wr32(&m, 0 * 16 + 12, 0);
    ck_assert_uint_eq(s.count, 3);
    ck_assert_uint_eq(s.vector, 0);
    msix_destroy(&m);
}
END_TEST

START_TEST(test_capability)
{
    struct msix m;
    struct sink s = {0};
    struct pci_device dev;
    const struct pci_id id = {.vendor = 1, .device = 2};
    pci_device_init(&dev, &id, NULL, NULL, "t");
    ck_assert_int_eq(msix_init(&m, 33, deliver, &s, NULL), 0);
    ck_assert_int_eq(msix_add_cap(&m, &dev, 2, 0x801, 2, 0x800), -EINVAL);
    ck_assert_int_eq(msix_add_cap(&m, &dev, 6, 0, 2, 0x800), -EINVAL);
    int cap = msix_add_cap(&m, &dev, 2, 0, 3, 0x800);
    ck_assert_int_eq(cap, PCI_CAP_START);
    ck_assert_uint_eq(dev.cfg[cap], PCI_CAP_ID_MSIX);
    ck_assert_uint_eq(pci_cfg_get(&dev, cap + 2, 2), 32); /* table size - 1 */
    ck_assert_uint_eq(pci_cfg_get(&dev, cap + 4, 4), 2);
    ck_assert_uint_eq(pci_cfg_get(&dev, cap + 8, 4), 0x803);
    /* Only enable and function mask are writable. */
    ck_assert_uint_eq(dev.wmask[cap + 2], 0);
    ck_assert_uint_eq(dev.wmask[cap + 3], 0xc0);
    pci_cfg_set(&dev, cap + 2, 2, 32 | MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
    msix_cfg_written(&m, &dev, 0x04, 2); /* elsewhere: ignored */
    ck_assert(!msix_enabled(&m));
    msix_cfg_written(&m, &dev, cap, 4);
    ck_assert(msix_enabled(&m));
    ck_assert_int_eq(msix_fire(&m, 32), MSIX_PENDING);
    pci_cfg_set(&dev, cap + 2, 2, 32 | MSIX_CTRL_ENABLE);
    msix_cfg_written(&m, &dev, cap + 3, 1);
    ck_assert_int_eq(msix_fire(&m, 32), MSIX_PENDING); /* the vector itself is still masked */
    msix_destroy(&m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("msix");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_init_and_reset_state);
    tcase_add_test(tc, test_table_access);
    tcase_add_test(tc, test_bad_accesses);
    tcase_add_test(tc, test_deliver_unmasked);
    tcase_add_test(tc, test_vector_mask_pending);
    tcase_add_test(tc, test_function_mask_and_enable);
    tcase_add_test(tc, test_capability);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
