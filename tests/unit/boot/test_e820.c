/* test_e820.c: the e820 map for small, PCI-hole-straddling and tiny guests. */
#include <check.h>
#include <stdint.h>

#include "platform/layout.h"
#include "boot/e820.h"
#include "boot/loader.h"
#include "memory.h"

/* The RAM below 1 MiB that the map leaves out: EBDA, VGA/ROM hole and BIOS area. */
#define LOW_CARVE_OUT (LAYOUT_HIGH_START - LAYOUT_EBDA_START)

/* Lay out size bytes as guest_mem_init() would, without mapping anything. */
static struct guest_mem fake_mem(uint64_t size)
{
    struct guest_mem gm = {.size = size, .nregions = 1};
    uint64_t low = size < LAYOUT_PCI_HOLE_START ? size : LAYOUT_PCI_HOLE_START;
    gm.regions[0] = (struct guest_region){.gpa = 0, .size = low};
    if (size > low) {
        gm.regions[1] = (struct guest_region){.gpa = LAYOUT_4G, .size = size - low};
        gm.nregions = 2;
    }
    return gm;
}

/* True if [addr, addr + size) lies inside one guest RAM region. */
static int in_ram(const struct guest_mem *gm, uint64_t addr, uint64_t size)
{
    for (unsigned i = 0; i < gm->nregions; i++) {
        const struct guest_region *r = &gm->regions[i];
        if (addr >= r->gpa && addr - r->gpa <= r->size && size <= r->size - (addr - r->gpa))
            return 1;
    }
    return 0;
}

/* Sorted, non-overlapping, non-empty, backed by RAM; returns the RAM total. */
static uint64_t check_map(const struct guest_mem *gm, unsigned *count)
{
    struct e820_range map[16];
    unsigned n = e820_build(gm, map, 16);
    uint64_t ram = 0, prev_end = 0;
    for (unsigned i = 0; i < n; i++) {
        ck_assert_uint_gt(map[i].size, 0);
        ck_assert_uint_ge(map[i].addr, prev_end);
        ck_assert(map[i].type == E820_RAM || map[i].type == E820_RESERVED);
        ck_assert_msg(in_ram(gm, map[i].addr, map[i].size), "entry %u beyond RAM", i);
        prev_end = map[i].addr + map[i].size;
        if (map[i].type == E820_RAM)
            ram += map[i].size;
    }
    *count = n;
    return ram;
}

static void check_size(uint64_t size, unsigned want_entries)
{
    struct guest_mem gm = fake_mem(size);
    unsigned n;
    ck_assert_uint_eq(check_map(&gm, &n), size - LOW_CARVE_OUT);
    ck_assert_uint_eq(n, want_entries);
}

START_TEST(test_8m_real_memory)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, 8 * MIB), 0);
    unsigned n;
    ck_assert_uint_eq(check_map(&gm, &n), 8 * MIB - LOW_CARVE_OUT);
    ck_assert_uint_eq(n, 4);
    guest_mem_free(&gm);
}
END_TEST

START_TEST(test_256m_layout)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, 256 * MIB), 0);
    struct e820_range m[8];
    ck_assert_uint_eq(e820_build(&gm, m, 8), 4);
    ck_assert(m[0].addr == 0 && m[0].size == LAYOUT_EBDA_START && m[0].type == E820_RAM);
    ck_assert(m[1].addr == LAYOUT_EBDA_START && m[1].size == 0x400 && m[1].type == E820_RESERVED);
    ck_assert(m[2].addr == LAYOUT_BIOS_START && m[2].size == 0x20000 && m[2].type == E820_RESERVED);
    ck_assert(m[3].addr == MIB && m[3].size == 255 * MIB && m[3].type == E820_RAM);
    guest_mem_free(&gm);
}
END_TEST

START_TEST(test_3g_exactly)
{
    check_size(3 * GIB, 4);
}
END_TEST

START_TEST(test_3g_plus_page)
{
    check_size(3 * GIB + 4096, 5);
    struct guest_mem gm = fake_mem(3 * GIB + 4096);
    struct e820_range m[8];
    ck_assert_uint_eq(e820_build(&gm, m, 8), 5);
    ck_assert_uint_eq(m[3].addr + m[3].size, LAYOUT_PCI_HOLE_START);
    ck_assert(m[4].addr == LAYOUT_4G && m[4].size == 4096 && m[4].type == E820_RAM);
}
END_TEST

START_TEST(test_6g)
{
    check_size(6 * GIB, 5);
    struct guest_mem gm = fake_mem(6 * GIB);
    struct e820_range m[8];
    ck_assert_uint_eq(e820_build(&gm, m, 8), 5);
    ck_assert(m[4].addr == LAYOUT_4G && m[4].size == 3 * GIB);
}
END_TEST

/* Below 1 MiB nothing may be reported past the end of RAM. */
START_TEST(test_tiny_sizes)
{
    static const uint64_t sizes[] = {4096,
                                     0x9f000,
                                     LAYOUT_EBDA_START,
                                     LAYOUT_EBDA_START + 0x200,
                                     LAYOUT_VGA_START,
                                     LAYOUT_BIOS_START + 0x1000,
                                     MIB,
                                     MIB + 4096};
    for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct guest_mem gm = fake_mem(sizes[i]);
        unsigned n;
        uint64_t ram = check_map(&gm, &n);
        uint64_t want = sizes[i] < LAYOUT_EBDA_START ? sizes[i] : LAYOUT_EBDA_START;
        if (sizes[i] > MIB)
            want += sizes[i] - MIB;
        ck_assert_uint_eq(ram, want);
        ck_assert_uint_ge(n, 1);
    }
    struct guest_mem none = {0};
    struct e820_range m[4];
    ck_assert_uint_eq(e820_build(&none, m, 4), 0);
}
END_TEST

START_TEST(test_max_entries_respected)
{
    struct guest_mem gm = fake_mem(6 * GIB);
    struct e820_range m[3] = {0};
    ck_assert_uint_eq(e820_build(&gm, m, 2), 2);
    ck_assert_uint_eq(m[2].size, 0);
    ck_assert_uint_eq(e820_build(&gm, m, 0), 0);
}
END_TEST

static Suite *e820_suite(void)
{
    Suite *s = suite_create("e820");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_8m_real_memory);
    tcase_add_test(tc, test_256m_layout);
    tcase_add_test(tc, test_3g_exactly);
    tcase_add_test(tc, test_3g_plus_page);
    tcase_add_test(tc, test_6g);
    tcase_add_test(tc, test_tiny_sizes);
    tcase_add_test(tc, test_max_entries_respected);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(e820_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
