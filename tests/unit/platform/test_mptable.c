/* test_mptable.c: the MP floating pointer and configuration table, parsed byte by byte. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "platform/layout.h"
#include "platform/mptable.h"
#include "memory.h"

#define RAM_SIZE (64 * MIB)

static uint8_t sum(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    for (size_t i = 0; i < len; i++)
        s += p[i];
    return s;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Check the floating pointer and return the host address of the config table. */
static const uint8_t *check_floating(const struct guest_mem *gm)
{
    const uint8_t *fp = gpa_to_host(gm, LAYOUT_EBDA_START, 16);
    ck_assert_mem_eq(fp, "_MP_", 4);
    ck_assert_uint_eq(fp[8], 1); /* length in paragraphs */
    ck_assert_uint_eq(fp[9], 4); /* spec 1.4 */
    ck_assert_uint_eq(sum(fp, 16), 0);
    ck_assert_uint_eq(fp[11], 0); /* feature 1: config table present */
    uint32_t cfg = le32(fp + 4);
    /* The table sits in memory the e820 map reserves (the BIOS area). */
    ck_assert_uint_ge(cfg, LAYOUT_BIOS_START);
    ck_assert_uint_lt(cfg, LAYOUT_HIGH_START);
    const uint8_t *t = gpa_to_host(gm, cfg, 44);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_le(cfg + le16(t + 4), LAYOUT_HIGH_START);
    return t;
}

static void check_header(const uint8_t *t)
{
    ck_assert_mem_eq(t, "PCMP", 4);
    ck_assert_uint_eq(t[6], 4);
    ck_assert_uint_eq(sum(t, le16(t + 4)), 0);
    ck_assert_mem_eq(t + 8, "KILN    ", 8);
    ck_assert_mem_eq(t + 16, "KILNVM      ", 12);
    ck_assert_uint_eq(le32(t + 36), LAYOUT_LAPIC);
    ck_assert_uint_eq(le16(t + 40), 0); /* no extended table */
}

/* What walking the entries found. */
struct mp_seen {
    unsigned cpus, bsp, buses, ioapics, ioints, lints;
};

static size_t check_cpu(const uint8_t *e, struct mp_seen *s)
{
    ck_assert_uint_eq(e[1], s->cpus); /* APIC IDs in order */
    ck_assert_uint_eq(e[2], 0x14);
    ck_assert_uint_eq(e[3] & 1, 1); /* enabled */
    ck_assert_uint_eq(!!(e[3] & 2), s->cpus == 0);
    s->bsp += !!(e[3] & 2);
    s->cpus++;
    return 20;
}

static size_t check_entry(const uint8_t *e, unsigned ncpus, struct mp_seen *s)
{
    switch (e[0]) {
    case 0:
        return check_cpu(e, s);
    case 1:
        ck_assert_mem_eq(e + 2, "ISA   ", 6);
        s->buses++;
        return 8;
    case 2:
        ck_assert_uint_eq(e[1], ncpus);
        ck_assert_uint_eq(e[2], 0x11);
        ck_assert_uint_eq(e[3] & 1, 1);
        ck_assert_uint_eq(le32(e + 4), LAYOUT_IOAPIC);
        s->ioapics++;
        return 8;
    case 3:
        /* ISA IRQ n -> I/O APIC pin n, conforming polarity and trigger. */
        ck_assert_uint_eq(e[1], 0);
        ck_assert_uint_eq(le16(e + 2), 0);
        ck_assert_uint_eq(e[5], s->ioints);
        ck_assert_uint_eq(e[6], ncpus);
        ck_assert_uint_eq(e[7], s->ioints);
        s->ioints++;
        return 8;
    case 4:
        ck_assert_uint_eq(e[1], s->lints == 0 ? 3 : 1); /* ExtINT, then NMI */
        ck_assert_uint_eq(e[6], 0xff);
        ck_assert_uint_eq(e[7], s->lints);
        s->lints++;
        return 8;
    }
    ck_abort_msg("unknown MP entry type %u", e[0]);
    return 0;
}

static void check_table(unsigned cpus)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    ck_assert_int_eq(mptable_write(&gm, cpus), 0);
    const uint8_t *t = check_floating(&gm);
    check_header(t);
    size_t len = le16(t + 4), off = 44;
    unsigned entries = 0;
    struct mp_seen s = {0};
    while (off < len) {
        off += check_entry(t + off, cpus, &s);
        entries++;
    }
    ck_assert_uint_eq(off, len);
    ck_assert_uint_eq(entries, le16(t + 34));
    ck_assert_uint_eq(s.cpus, cpus);
    ck_assert_uint_eq(s.bsp, 1);
    ck_assert_uint_eq(s.buses, 1);
    ck_assert_uint_eq(s.ioapics, 1);
    ck_assert_uint_eq(s.ioints, 16);
    ck_assert_uint_eq(s.lints, 2);
    guest_mem_free(&gm);
}

START_TEST(test_one_cpu)
{
    check_table(1);
}
END_TEST

START_TEST(test_two_cpus)
{
    check_table(2);
}
END_TEST

START_TEST(test_64_cpus)
{
    check_table(64);
}
END_TEST

START_TEST(test_max_cpus)
{
    check_table(255);
}
END_TEST

START_TEST(test_bad_cpu_counts)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    ck_assert_int_eq(mptable_write(&gm, 0), -EINVAL);
    ck_assert_int_eq(mptable_write(&gm, 256), -E2BIG);
    guest_mem_free(&gm);
}
END_TEST

START_TEST(test_no_memory_for_table)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, 512 * KIB), 0);
    ck_assert_int_lt(mptable_write(&gm, 1), 0);
    guest_mem_free(&gm);
}
END_TEST

static Suite *mptable_suite(void)
{
    Suite *s = suite_create("mptable");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_one_cpu);
    tcase_add_test(tc, test_two_cpus);
    tcase_add_test(tc, test_64_cpus);
    tcase_add_test(tc, test_max_cpus);
    tcase_add_test(tc, test_bad_cpu_counts);
    tcase_add_test(tc, test_no_memory_for_table);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mptable_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
